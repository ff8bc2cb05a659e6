/**
 * The SQL literal mask shared by every SQL client patch (`db.statement`),
 * PostgreSQL and MySQL lexical rules.
 */
import assert from 'assert';
import { maskSqlLiterals } from '../src/sql';

function cases(dialect: 'postgres' | 'mysql', table: Array<[string, string]>): void {
  for (const [text, masked] of table) {
    it(JSON.stringify(text), () => assert.strictEqual(maskSqlLiterals(text, dialect), masked));
  }
}

describe('maskSqlLiterals(text, dialect)', () => {
  describe('postgres (the default)', () => {
    it('is the default dialect', () => assert.strictEqual(maskSqlLiterals(`SELECT "a", 'b'`), `SELECT "a", ?`));
    cases('postgres', [
      [`SELECT * FROM t WHERE token = 'x'`, 'SELECT * FROM t WHERE token = ?'],
      [`ALTER ROLE bob PASSWORD 'hunter2'`, 'ALTER ROLE bob PASSWORD ?'],
      [`SELECT 'it''s', 'a\\'`, 'SELECT ?, ?'],
      [`SELECT E'a\\'b''c', e'\\\\' AS x`, 'SELECT ?, ? AS x'],
      [`SELECT X'1F', B'101', N'n', U&'d\\0061t'`, 'SELECT ?, ?, ?, U&?'],
      [`SELECT $$a 'quoted' $1 body$$, $fn$ x $$ y $fn$, $1, $23::int`, 'SELECT ?, ?, $1, $23::int'],
      [`SELECT 42, -7, 1.5, .5, 1e10, 2.5E-3, 0x1F, 0o17, 0b101, 1_000_000`, 'SELECT ?, -?, ?, ?, ?, ?, ?, ?, ?, ?'],
      [`SELECT t1.c2, "T 3"."x'y", col_4, a$5 FROM s6.t7`, `SELECT t1.c2, "T 3"."x'y", col_4, a$5 FROM s6.t7`],
      [`SELECT 1 -- a 'comment' with 42\nFROM t`, 'SELECT ? \nFROM t'],
      [`/* leading */ SELECT /* a /* nested 'x' */ still */ 1`, 'SELECT  ?'],
      [`SELECT/**/2`, 'SELECT ?'],
      [`SELECT '2024-01-01'::date, interval '1 day', ARRAY[1,2]`, 'SELECT ?::date, interval ?, ARRAY[?,?]'],
      [`SELECT data->>'token' FROM t WHERE data ? 'k'`, 'SELECT data->>? FROM t WHERE data ? ?'],
      [`SELECT 'unterminated`, 'SELECT ?'],
      [`SELECT $tag$ unterminated`, 'SELECT ?'],
      [`SELECT 1 /* unterminated`, 'SELECT ?'],
      [`SELECT "a""b", 'x'`, `SELECT "a""b", ?`],
      ['', ''],
      ['BEGIN', 'BEGIN'],
      [`SELECT café, 'é' FROM t`, 'SELECT café, ? FROM t'],
    ]);
  });

  describe('mysql', () => {
    cases('mysql', [
      [`SELECT * FROM t WHERE token = "x" AND name = 'y'`, 'SELECT * FROM t WHERE token = ? AND name = ?'],
      [`SELECT 'a\\'b', "c\\"d", 'e''f'`, 'SELECT ?, ?, ?'],
      [`SELECT X'1F', x'ab', 0xAB, b'101', 0b11, _utf8mb4'z', N'n'`, 'SELECT ?, ?, ?, ?, ?, ?, ?'],
      ['SELECT `weird ``name`, 1table, t2.c3 FROM `t4`', 'SELECT `weird ``name`, 1table, t2.c3 FROM `t4`'],
      [`SELECT 1 # note 'x'\nFROM t -- also\n`, 'SELECT ? \nFROM t'],
      [`SELECT 1--1`, 'SELECT ?--?'],
      [`SELECT /* a /* b */ 1`, 'SELECT  ?'],
      [`INSERT INTO t (a, b) VALUES (?, ?), (3, 'x')`, 'INSERT INTO t (a, b) VALUES (?, ?), (?, ?)'],
      [`SET PASSWORD FOR 'bob'@'%' = 'hunter2'`, 'SET PASSWORD FOR ?@? = ?'],
      [`SELECT @v := 5, @@session.sql_mode`, 'SELECT @v := ?, @@session.sql_mode'],
    ]);
  });

  it('returns the very same string when there is nothing to mask', () => {
    const text = 'SELECT a FROM t WHERE id = $1';
    assert.strictEqual(maskSqlLiterals(text), text);
  });

  it('takes linear time on hostile input', () => {
    for (const piece of ["'", '/*', '$a$', '--', '\\', "E'\\", '1e', '"']) {
      const text = `SELECT ${piece.repeat(50000)}`;
      const started = process.hrtime.bigint();
      maskSqlLiterals(text);
      maskSqlLiterals(text, 'mysql');
      assert.ok(Number(process.hrtime.bigint() - started) < 200e6, `${JSON.stringify(piece)} repeated`);
    }
  });
});
