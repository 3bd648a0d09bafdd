'use strict';
// Benchmark run by cli/src/bridge/node_tests.rs under a BridgeSession:
// cost of loading the runner's addon, of the first call (opens the private
// stream), and the round-trip latency of one call (goal: under 50 µs).
const calls = Number(process.argv[2] || 10000);
const ms = (ns) => (Number(ns) / 1e6).toFixed(2);
const us = (ns) => (Number(ns) / 1e3).toFixed(1);

let t = process.hrtime.bigint();
const api = require(process.env.VP_RUN_NODE_CLIENT_PATH).load();
const load = process.hrtime.bigint() - t;

t = process.hrtime.bigint();
api.getEnv('NODE_ENV', { tracked: false });
const first = process.hrtime.bigint() - t;

t = process.hrtime.bigint();
for (let i = 0; i < calls; i++) api.getEnv('NODE_ENV', { tracked: false });
const each = (process.hrtime.bigint() - t) / BigInt(calls);

console.log(`addon load: ${ms(load)} ms`);
console.log(`first call (connect + hello): ${us(first)} µs`);
console.log(`round trip: ${us(each)} µs per getEnv over ${calls} calls`);
