// N concurrent GETs of one URL, in rounds: the client of the proxied-requests measurement, run
// both inside the sandbox (at the proxy's route, no credential) and on the host (straight at the
// upstream, with the header from BENCH_AUTHORIZATION). One JSON line on stdout: each round's
// total time and every request's latency in ms.
//
//   node fetch-many.mjs URL COUNT ROUNDS
const [url, count, rounds] = process.argv.slice(2);
const n = Number(count);
const r = Number(rounds);
if (!url || !Number.isInteger(n) || n < 1 || !Number.isInteger(r) || r < 1) {
  process.stderr.write("usage: node fetch-many.mjs URL COUNT ROUNDS\n");
  process.exit(2);
}
const headers = process.env.BENCH_AUTHORIZATION
  ? { authorization: process.env.BENCH_AUTHORIZATION }
  : {};

async function one() {
  const started = performance.now();
  const response = await fetch(url, { headers });
  const body = await response.arrayBuffer();
  if (response.status !== 200 || body.byteLength === 0) {
    throw new Error(`GET ${url}: ${response.status}, ${body.byteLength} bytes`);
  }
  return performance.now() - started;
}

const out = [];
for (let i = 0; i < r; i++) {
  const started = performance.now();
  const latencies = await Promise.all(Array.from({ length: n }, one));
  out.push({ totalMs: performance.now() - started, latencies });
}
process.stdout.write(`${JSON.stringify({ rounds: out })}\n`);
