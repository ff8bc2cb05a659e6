// The ES module app of bench/startup.ts: imports pg, reports its CPU time at exit.
import pg from 'pg';

process.on('exit', () => {
  const u = process.cpuUsage();
  process.stdout.write('CPU ' + (u.user + u.system) + (typeof pg.Client === 'function' ? '' : ' no pg'));
});
