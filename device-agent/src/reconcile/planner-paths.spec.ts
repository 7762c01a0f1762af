import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { UPDATE_STATES, type DesiredModel, type UpdateState } from '@fleetline/protocol';
import { MemoryStateStore } from '../storage/store.js';
import { decideRecovery, recoveryTransition, UpdateJournal, type JournalEntry } from '../update/journal.js';
import { END_STATES, canTransition, transition } from '../update/transition-table.js';
import { IllegalStepError, planSteps, stepTransitions, type CurrentModelState, type Step } from './planner.js';

/**
 * Property: whatever a crash left in the journal (any state, deadline passed or not, assignment
 * superseded, unassigned or unchanged, install requested or not, any restart count, any pointers),
 * recovery takes only rows of the table, every plan the planner then produces is a legal path
 * through the table (its success path and the failure row of every step), and re-planning after
 * each plan converges on an ended update for the current assignment within a few passes.
 */

const NOW = Date.parse('2026-01-01T12:00:00Z');
const VERSIONS = ['1.0.0', '1.1.0', '1.2.0'] as const;

function desiredModel(version: string, revision: number, action: DesiredModel['action']): DesiredModel {
  return {
    v: 1,
    model: 'm',
    version,
    revision,
    action,
    ...(action === 'shadow' ? { shadow: { samplePercent: 10, durationSeconds: 60 } } : {}),
    artifacts: [{ targetPath: `m/${version}/f`, sha256: 'a'.repeat(64), length: 1, runtime: 'onnx', compatibility: {} }],
    assignedAt: '2026-01-01T00:00:00Z',
  };
}

interface Scenario {
  entry: JournalEntry | undefined;
  /** What the agent knows as desired after the restart: undefined = nothing persisted (use the journal's). */
  desired: DesiredModel | null | undefined;
  activeVersion: string | null;
  previousVersion: string | null;
}

const versionArb = fc.constantFrom(...VERSIONS);
const actionArb = fc.constantFrom<DesiredModel['action']>('install', 'download-only', 'shadow');

const entryArb: fc.Arbitrary<JournalEntry> = fc
  .record({
    state: fc.constantFrom(...UPDATE_STATES),
    version: versionArb,
    revision: fc.integer({ min: 1, max: 5 }),
    action: actionArb,
    installRequested: fc.boolean(),
    restarts: fc.integer({ min: 0, max: 4 }),
    deadlinePassed: fc.option(fc.boolean(), { nil: undefined }), // undefined: no deadline
    previousVersion: fc.option(versionArb, { nil: null }),
  })
  .map((r) => ({
    model: 'm',
    desired: desiredModel(r.version, r.revision, r.action),
    state: r.state,
    previousVersion: r.previousVersion,
    priorPrevious: null,
    restarts: r.restarts,
    ...(r.installRequested ? { installRequested: true } : {}),
    startedAt: '2026-01-01T11:00:00Z',
    updatedAt: '2026-01-01T11:00:00Z',
    ...(r.deadlinePassed === undefined ? {} : { deadline: new Date(NOW + (r.deadlinePassed ? -60_000 : 60_000)).toISOString() }),
  }));

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    entry: fc.option(entryArb, { nil: undefined }),
    desiredKind: fc.constantFrom('same', 'superseded', 'unassigned', 'unknown', 'fresh'),
    desiredVersion: versionArb,
    desiredAction: actionArb,
    bump: fc.integer({ min: 1, max: 3 }),
    activeVersion: fc.option(versionArb, { nil: null }),
    previousVersion: fc.option(versionArb, { nil: null }),
  })
  .map((r) => {
    const e = r.entry;
    let desired: DesiredModel | null | undefined;
    switch (r.desiredKind) {
      case 'same':
        desired = e ? e.desired : desiredModel(r.desiredVersion, 1, r.desiredAction);
        break;
      case 'superseded':
      case 'fresh':
        desired = desiredModel(r.desiredVersion, (e?.desired.revision ?? 0) + r.bump, r.desiredAction);
        break;
      case 'unassigned':
        desired = null;
        break;
      default:
        desired = undefined;
    }
    // Pointers as the journal implies them: in health-checking (and after a commit) the update's version is active.
    const activeVersion = e && (e.state === 'health-checking' || e.state === 'committed') ? e.desired.version : r.activeVersion;
    return { entry: e, desired, activeVersion, previousVersion: r.previousVersion };
  });

interface Sim {
  entry: { version: string; revision: number; state: UpdateState; installRequested: boolean; previousVersion: string | null } | undefined;
  active: string | null;
  previous: string | null;
}

function current(sim: Sim): CurrentModelState {
  return {
    activeVersion: sim.active,
    previousVersion: sim.previous,
    ...(sim.entry
      ? { update: { version: sim.entry.version, revision: sim.entry.revision, state: sim.entry.state, installRequested: sim.entry.installRequested } }
      : {}),
  };
}

/**
 * Walks one plan the way the executor does, on its success path, checking every row it takes and
 * the failure row of every step. Returns false when the plan stopped early (the executor's `stop`).
 */
function walkPlan(steps: Step[], sim: Sim, desired: DesiredModel | null): boolean {
  for (const step of steps) {
    const e = sim.entry;
    const forDesired = e !== undefined && desired !== null && e.version === desired.version && e.revision === desired.revision;
    const t = stepTransitions(step, e?.state, forDesired); // throws when the table does not allow the step here
    if (t.begin) {
      expect(desired).not.toBeNull();
      sim.entry = {
        version: desired!.version,
        revision: desired!.revision,
        state: 'idle',
        installRequested: false,
        previousVersion: step.kind === 'acknowledge' ? sim.previous : sim.active,
      };
    }
    for (const event of t.enter) sim.entry!.state = transition(sim.entry!.state, event);
    if (t.onFailure) {
      const failed = transition(sim.entry!.state, t.onFailure);
      // A failure ends the update, or rolls back first and then ends it either way.
      if (failed === 'rolling-back') {
        expect(END_STATES).toContain(transition(failed, 'restored'));
        expect(END_STATES).toContain(transition(failed, 'fail'));
      } else {
        expect(END_STATES).toContain(failed);
      }
    }
    // The step's own effect on the device.
    if (step.kind === 'activate') {
      sim.previous = sim.entry!.previousVersion;
      sim.active = sim.entry!.version;
    }
    if (step.kind === 'roll-back') sim.active = sim.entry!.previousVersion;
    if (t.exit) sim.entry!.state = transition(sim.entry!.state, t.exit);
    if (t.removes) sim.entry = undefined;
    if (step.kind === 'remove-model') {
      sim.active = null;
      sim.previous = null;
      return false;
    }
    if (step.kind === 'roll-back' || (step.kind === 'verify' && step.then === 'stage')) return false;
  }
  return true;
}

describe('planner paths through the transition table', () => {
  it('recovery never throws and takes only rows of the table, for any persisted journal entry', async () => {
    await fc.assert(
      fc.asyncProperty(entryArb, async (entry) => {
        const journal = new UpdateJournal(new MemoryStateStore());
        const decision = decideRecovery(entry, new Date(NOW));
        const change = recoveryTransition(entry, decision);
        if (change) {
          expect(canTransition(entry.state, change.event)).toBe(true);
          const next = await journal.apply(entry, change.event, new Date(NOW), change.patch);
          expect(next.state).toBe(transition(entry.state, change.event));
        } else {
          expect(['none', 'resume']).toContain(decision.kind);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('every plan from every journal state is a legal path, and re-planning converges on an ended update', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const sim: Sim = {
          entry: sc.entry && {
            version: sc.entry.desired.version,
            revision: sc.entry.desired.revision,
            state: sc.entry.state,
            installRequested: sc.entry.installRequested ?? false,
            previousVersion: sc.entry.previousVersion,
          },
          active: sc.activeVersion,
          previous: sc.previousVersion,
        };
        // Agent start: recovery first.
        if (sc.entry) {
          const change = recoveryTransition(sc.entry, decideRecovery(sc.entry, new Date(NOW)));
          if (change) sim.entry!.state = transition(sim.entry!.state, change.event);
        }
        // What the reconciler plans for: the persisted desired state, else the journal's own.
        const desired = sc.desired === undefined ? (sc.entry?.desired ?? null) : sc.desired;
        if (sc.desired === undefined && !sc.entry) return; // never heard of this model: nothing to do

        let passes = 0;
        for (;;) {
          const steps = planSteps(desired, current(sim));
          if (steps.length === 0) break;
          passes++;
          expect(passes).toBeLessThanOrEqual(4);
          walkPlan(steps, sim, desired);
        }

        if (desired === null) {
          // Unassigned: whatever was in flight ended or was abandoned; nothing of it may be left mid-way.
          if (sim.entry) expect([...END_STATES, 'downloaded']).toContain(sim.entry.state);
          return;
        }
        expect(sim.entry).toBeDefined();
        const e = sim.entry!;
        expect([...END_STATES, 'downloaded']).toContain(e.state);
        // Ended for the current assignment, unless a revision that already ended is being re-delivered.
        expect(e.revision).toBe(desired.revision);
        // A commit made here left the assigned version active (a committed entry read back as it was is taken as is).
        const readBack = sc.entry?.state === 'committed' && sc.entry.desired.revision === e.revision;
        if (e.state === 'committed' && !readBack) expect(sim.active).toBe(desired.version);
      }),
      { numRuns: 5000 },
    );
  });

  it('refuses a step the table does not allow where the journal is', () => {
    // Past the point of no return nothing abandons the update; a new update never opens over one in flight.
    expect(() => stepTransitions({ kind: 'abandon', version: '1.1.0', revision: 2 }, 'activating', false)).toThrow(IllegalStepError);
    expect(() => stepTransitions({ kind: 'check-compatibility' }, 'downloading', false)).toThrow(IllegalStepError);
    expect(() => stepTransitions({ kind: 'remove-model' }, 'health-checking', false)).toThrow(IllegalStepError);
    expect(() => stepTransitions({ kind: 'commit' }, undefined, false)).toThrow(IllegalStepError);
    expect(stepTransitions({ kind: 'verify', then: 'install' }, 'downloaded', true)).toMatchObject({ enter: ['install'], exit: 'verified', onFailure: 'fail' });
  });

  it('walks every state of the table at least once', () => {
    // Exhaustive companion of the random walk: each state x {same, superseded, unassigned} x install requested.
    for (const state of UPDATE_STATES) {
      for (const kind of ['same', 'superseded', 'unassigned'] as const) {
        for (const installRequested of [false, true]) {
          const d = desiredModel('1.1.0', 2, 'install');
          const desired = kind === 'same' ? d : kind === 'superseded' ? desiredModel('1.2.0', 3, 'install') : null;
          const sim: Sim = { entry: { version: '1.1.0', revision: 2, state, installRequested, previousVersion: '1.0.0' }, active: '1.0.0', previous: null };
          for (let pass = 0; pass < 5; pass++) {
            const steps = planSteps(desired, current(sim));
            if (steps.length === 0) break;
            walkPlan(steps, sim, desired);
          }
          expect(planSteps(desired, current(sim))).toEqual([]);
        }
      }
    }
  });
});
