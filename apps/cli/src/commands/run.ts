/**
 * `bottle run FILE [-- CMD…]`: `up`, then the agent in the sandbox on its own terminal, then the
 * teardown, also on Ctrl-C, SIGTERM, SIGHUP or a sidecar that stops. Exits with the agent's code.
 */
import type { Command } from "commander";
import { processRef, writeRecord } from "../bottle/state.ts";
import { AGENT_URLS, agentSideOf, type Bottle, SOCKETS, teardown } from "../bottle/up.ts";
import { runDockerAgent } from "../docker/agent.ts";
import { CliError } from "../errors.ts";
import type { Progress } from "../progress.ts";
import { prepareSandbox, sandboxProcess } from "../sandbox/index.ts";
import { attachPipes, attachPty, type Ended, exitCodeOf, hasTerminal } from "../terminal.ts";
import { type CommandContext, EXIT_CODES, report } from "./context.ts";
import { bringUpFrom, processOf, progressOf, type UpFlags, upOptions } from "./up.ts";

/** How long the agent has to exit after SIGTERM before the sandbox is killed. */
const AGENT_GRACE_MS = 5_000;

export function runCommand(program: Command, ctx: CommandContext): void {
  upOptions(program.command("run"))
    .description(
      "bring a bottle up, run the agent in it, tear it down; exits with the agent's code",
    )
    .argument("[command...]", "the agent command after -- (default: the manifest's agent.command)")
    .addHelpText(
      "after",
      `
The agent runs in a bubblewrap sandbox: its own network namespace (only its loopback, where
the git gate listens on ${AGENT_URLS.gate} and the proxy on ${AGENT_URLS.proxy}), no
capability, a seccomp filter, a minimal /etc, the workspace at agent.workdir. On a terminal it
gets its own pseudo-terminal; Ctrl-C and Ctrl-Z reach the agent.
With --backend docker, the sidecars, a forwarder and the agent (in agent.image, as the
workspace's owner) are containers on DOCKER_HOST's engine, and the agent's only network is
the same loopback; without a terminal its stdin is empty.

Examples:
  bottle run bottle.yaml                       the manifest's agent, after a confirmation
  bottle run bottle.yaml --yes -- bash         a shell in the bottle
  bottle run bottle.yaml --name task-42 --workspace ~/src/api --yes -- claude -p "fix the tests"
  DOCKER_HOST=unix:///run/podman/podman.sock bottle run bottle.yaml --backend docker --yes
${EXIT_CODES}`,
    )
    .action(async (file: string, command: string[], flags: UpFlags) => {
      const proc = processOf(ctx);
      const progress = await progressOf(ctx, flags.json);
      // Until the agent runs, a signal stops the bring-up through the teardown below.
      let interrupted: NodeJS.Signals | null = null;
      let stopAgent: ((reason: string) => void) | null = null;
      const offSignal = proc.onSignal((signal) => {
        interrupted ??= signal;
        stopAgent?.(`${signal} received`);
      });
      let bottle: Bottle | null = null;
      try {
        bottle = await bringUpFrom(file, flags, ctx, "run", progress);
        if (interrupted) {
          // Signalled while the bottle came up: no agent runs; the shell's code for the signal.
          progress.note(`${interrupted} received before the agent started`);
          ctx.exit(exitCodeOf(null, interrupted));
          return;
        }
        const onStop = (stop: (reason: string) => void) => {
          stopAgent = stop;
        };
        const ended =
          bottle.record.backend === "docker"
            ? await runDockerAgent({
                bottle,
                command,
                env: ctx.io.env,
                terminal: hasTerminal(proc) ? proc : null,
                stdin: proc.stdin,
                stdout: proc.stdout,
                stderr: ctx.io.stderr as NodeJS.WritableStream,
                progress,
                graceMs: AGENT_GRACE_MS,
                onStop,
              })
            : await runAgent(bottle, command, ctx, progress, onStop);
        ctx.exit(ended.exitCode);
      } catch (error) {
        ctx.exit(report(error, ctx.io));
      } finally {
        offSignal();
        if (bottle !== null) {
          try {
            await teardown(bottle.paths, ctx.io.env, progress);
          } catch (error) {
            ctx.exit(report(error, ctx.io));
          }
        }
      }
    });
}

/**
 * Runs the agent in the sandbox until it exits, a sidecar stops (the agent is stopped and the
 * reason shown) or `onStop`'s function is called.
 */
async function runAgent(
  bottle: Bottle,
  command: readonly string[],
  ctx: CommandContext,
  progress: Progress,
  onStop: (stop: (reason: string) => void) => void,
): Promise<Ended> {
  const proc = processOf(ctx);
  const { manifest, paths } = bottle;
  const side = agentSideOf(bottle);
  const terminal = hasTerminal({ stdin: proc.stdin, stdout: proc.stdout }) ? "pty" : "none";
  const forwards = [
    ...(bottle.gate ? [{ port: Number(new URL(AGENT_URLS.gate).port), socket: SOCKETS.gate }] : []),
    ...(bottle.proxy
      ? [{ port: Number(new URL(AGENT_URLS.proxy).port), socket: SOCKETS.proxy }]
      : []),
  ];
  const launch = await prepareSandbox({
    dir: paths.sandbox,
    workspace: bottle.workspace,
    workdir: manifest.agent.workdir,
    socketsDir: paths.sockets,
    forwards,
    env: {
      ...side.env,
      ...(terminal === "pty" && ctx.io.env.TERM ? { TERM: ctx.io.env.TERM } : {}),
    },
    homeFiles: side.homeFiles,
    roBinds: manifest.agent.binds ?? [],
    command: command.length > 0 ? command : manifest.agent.command,
    terminal,
  });
  const agent =
    terminal === "pty"
      ? await attachPty(launch, { stdin: proc.stdin, stdout: proc.stdout })
      : attachPipes(launch);
  const sandbox = sandboxProcess({ pid: agent.pid }, launch);
  sandbox
    .agentPid()
    .then((pid) => {
      bottle.record = { ...bottle.record, agent: processRef(pid) };
      writeRecord(paths, bottle.record);
    })
    .catch(() => {});

  let stopping: Promise<void> | null = null;
  const stop = (reason: string) => {
    if (stopping) return;
    progress.note(`stopping the agent: ${reason}`);
    bottle.record = { ...bottle.record, ended: { reason } };
    stopping = sandbox.stop(AGENT_GRACE_MS);
  };
  onStop(stop);
  let sidecarFailure: string | null = null;
  const watchers = bottle.sidecars.map((sidecar) => {
    const onExit = (code: number | null, signal: string | null) => {
      sidecarFailure = `the ${sidecar.record.name} sidecar stopped (${signal ?? `exit code ${code}`}); its log: ${sidecar.record.log}`;
      stop(sidecarFailure);
    };
    sidecar.child.once("exit", onExit);
    return () => sidecar.child.off("exit", onExit);
  });
  const ended = await agent.ended;
  for (const unwatch of watchers) unwatch();
  if (stopping) await stopping;
  bottle.record = {
    ...bottle.record,
    ended: { reason: bottle.record.ended?.reason ?? "the agent exited", exitCode: ended.exitCode },
  };
  writeRecord(paths, bottle.record);
  if (sidecarFailure !== null) throw new CliError("BTL_CLI_SIDECAR", sidecarFailure);
  return ended;
}
