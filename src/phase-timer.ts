// Wall and CPU time of the phases of one long operation (the quantizer's
// calibration, rewrite, encoding and check), so a stage can say where its
// time went. CPU is the whole process's (onnxruntime's threads included), so
// it means one phase's cost only while nothing else runs in the process.

export interface PhaseTime {
  phase: string;
  wallMs: number;
  cpuMs: number;
}

export class PhaseTimer {
  readonly phases: PhaseTime[] = [];

  async time<T>(phase: string, work: () => T | Promise<T>): Promise<T> {
    const cpu = process.cpuUsage();
    const wall = performance.now();
    try {
      return await work();
    } finally {
      const used = process.cpuUsage(cpu);
      this.phases.push({ phase, wallMs: performance.now() - wall, cpuMs: (used.user + used.system) / 1000 });
    }
  }

  /** "calibration 5.1 s (CPU 9.8 s), encode 0.2 s (CPU 0.2 s)" */
  summary(): string {
    return this.phases.map((p) => `${p.phase} ${(p.wallMs / 1000).toFixed(2)} s (CPU ${(p.cpuMs / 1000).toFixed(2)} s)`).join(', ');
  }
}
