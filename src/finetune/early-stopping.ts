// When fine-tuning stops and which epoch it keeps. The kept epoch is the best
// by validation accuracy, then loss (epoch 0, the warm start, included, so the
// result never scores below where it began). Progress, which resets the
// patience, is a new best epoch or a new lowest validation loss: the accuracy
// of a few hundred validation images moves in steps of one image and can
// stall for epochs while the loss still falls, as it does at the small
// learning rates fine-tuning uses.

export interface Score {
  valAccuracy: number;
  valLoss: number;
}

/** Whether `a` is a better epoch than `b`: higher accuracy, then lower loss. */
export const betterScore = (a: Score, b: Score): boolean => a.valAccuracy > b.valAccuracy || (a.valAccuracy === b.valAccuracy && a.valLoss < b.valLoss);

export class EarlyStopping {
  private best: Score;
  private lowestLoss: number;
  private sinceProgress = 0;

  /** `patience`: epochs without progress before stopping; null: never stop early. */
  constructor(
    start: Score,
    private readonly patience: number | null,
  ) {
    this.best = start;
    this.lowestLoss = start.valLoss;
  }

  /** Records an epoch: whether it is the new best (to keep), and whether to stop after it. */
  observe(score: Score): { best: boolean; stop: boolean } {
    const best = betterScore(score, this.best);
    const lowerLoss = score.valLoss < this.lowestLoss;
    if (best) this.best = score;
    this.lowestLoss = Math.min(this.lowestLoss, score.valLoss);
    if (best || lowerLoss) this.sinceProgress = 0;
    else this.sinceProgress++;
    return { best, stop: this.patience !== null && this.sinceProgress >= this.patience };
  }
}
