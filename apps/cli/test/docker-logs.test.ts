import { describe, expect, it } from "vitest";
import { LogDemuxer } from "../src/docker/engine.ts";

/** One frame of Docker's multiplexed stream: stream id, three zero bytes, length, payload. */
function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

async function demux(chunks: Buffer[], only?: 1 | 2): Promise<string> {
  const demuxer = new LogDemuxer(only);
  const out: Buffer[] = [];
  demuxer.on("data", (chunk: Buffer) => out.push(chunk));
  const ended = new Promise<void>((resolve, reject) => {
    demuxer.once("end", resolve);
    demuxer.once("error", reject);
  });
  for (const chunk of chunks) demuxer.write(chunk);
  demuxer.end();
  await ended;
  return Buffer.concat(out).toString("utf8");
}

describe("LogDemuxer", () => {
  const stream = Buffer.concat([
    frame(1, "out one\n"),
    frame(2, "err one\n"),
    frame(1, "out two\n"),
  ]);

  it("strips the 8-byte frame headers, whatever the chunk boundaries", async () => {
    const whole = await demux([stream]);
    expect(whole).toBe("out one\nerr one\nout two\n");
    for (const size of [1, 3, 7, 9, 13]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      expect(await demux(chunks)).toBe(whole);
    }
  });

  it("keeps only stdout or only stderr when asked", async () => {
    expect(await demux([stream], 1)).toBe("out one\nout two\n");
    expect(await demux([stream], 2)).toBe("err one\n");
  });

  it("refuses a stream that is not multiplexed, and one cut inside a frame", async () => {
    await expect(demux([Buffer.from("plain text from a terminal\n")])).rejects.toThrow(
      /not a multiplexed log stream/,
    );
    await expect(demux([stream.subarray(0, stream.length - 3)])).rejects.toThrow(/cut short/);
  });
});
