import { MultiBar, type SingleBar } from 'cli-progress';
import { resolveClientSettings, RolloutsClient } from '#otter/api-client';
import type { CliContext } from '../cli-context.js';
import { eventLine } from '../event-lines.js';
import { formatBytes } from '../output.js';
import { NODE_PROGRESS_STEPS, RolloutWatchModel, progressOf, type WaveView } from '../rollout-watch-model.js';
import { terminalSafe, terminalText } from '../terminal-text.js';
import { eventsClient } from './events.command.js';

/**
 * `otter rollout watch ID`: the rollout's waves and its nodes in flight, live, until it completes or is
 * aborted. On a TTY (stderr) as progress bars; otherwise one line per event on stdout, as `otter events`.
 * The picture starts from the rollout as the API shows it, then the rollout's events replayed from the stream
 * and followed live move it on (a finished node never goes back).
 */
export async function watchRollout(ctx: CliContext, id: string): Promise<void> {
  const rollouts = new RolloutsClient(resolveClientSettings(ctx.env, ctx.cwd));
  const model = new RolloutWatchModel(await rollouts.getRollout(id), await rollouts.rolloutNodes(id));
  const view = ctx.stderr.isTTY ? new BarsView(ctx.stderr) : undefined;
  if (!model.ended) {
    const controller = new AbortController();
    view?.draw(model);
    for await (const message of eventsClient(ctx).events({
      follow: true,
      rolloutId: id,
      lastEventId: '0-0',
      signal: controller.signal,
    })) {
      if (message.type !== 'event') continue;
      if (!view) ctx.stdout.write(eventLine(message.event));
      if (model.apply(message.event)) view?.draw(model);
      if (model.ended) {
        controller.abort();
        break;
      }
    }
  }
  view?.stop();
  ctx.stdout.write(
    terminalText`rollout ${id} ${model.state}${model.stateReason ? `: ${model.stateReason}` : ''}\n`,
  );
}

/** One bar per wave, one per node in flight; values and labels redrawn from the model on every change. */
class BarsView {
  private readonly bars: MultiBar;
  private readonly waveBars = new Map<number, SingleBar>();
  private readonly nodeBars = new Map<string, SingleBar>();

  constructor(stream: NodeJS.WritableStream) {
    this.bars = new MultiBar({
      stream,
      format: '{label} [{bar}] {detail}',
      barsize: 24,
      hideCursor: false,
      clearOnComplete: false,
      forceRedraw: true,
    });
  }

  draw(model: RolloutWatchModel): void {
    for (const wave of model.waves()) {
      const payload = { label: `wave ${wave.wave + 1}`.padEnd(14), detail: waveDetail(wave) };
      const bar = this.waveBars.get(wave.wave);
      if (bar) bar.update(wave.finished, payload);
      else this.waveBars.set(wave.wave, this.bars.create(Math.max(1, wave.size), wave.finished, payload));
    }
    const active = new Set<string>();
    for (const node of model.activeNodes()) {
      active.add(node.nodeId);
      const payload = {
        label: terminalSafe(node.nodeId.slice(0, 12)).padEnd(14),
        detail: terminalSafe(`${node.state}${node.bytes !== undefined ? ` ${formatBytes(node.bytes)}` : ''}`),
      };
      const bar = this.nodeBars.get(node.nodeId);
      if (bar) bar.update(progressOf(node.state), payload);
      else
        this.nodeBars.set(
          node.nodeId,
          this.bars.create(NODE_PROGRESS_STEPS, progressOf(node.state), payload),
        );
    }
    for (const [nodeId, bar] of this.nodeBars) {
      if (active.has(nodeId)) continue;
      this.bars.remove(bar);
      this.nodeBars.delete(nodeId);
    }
  }

  stop(): void {
    this.bars.stop();
  }
}

function waveDetail(w: WaveView): string {
  return `${w.finished}/${w.size} done (${w.succeeded} ok, ${w.failed} failed), ${w.inProgress} updating`;
}
