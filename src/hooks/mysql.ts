import type { Instrumentation } from '../instrumentation';
export const mysql: Instrumentation<object> = { name: 'mysql', module: 'mysql', versions: '>=2 <3', patch() {}, unpatch() {} };
