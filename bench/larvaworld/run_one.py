"""Run ONE larvaworld 2.5.1 experiment in a fresh process and append one CSV row (the reference runs of
bench/results/larvaworld-2.5.1-reference.txt; needs `pip install larvaworld==2.5.1` in a venv of its own,
never larvastudy's: see run_all.sh).

usage: run_one.py CONDITION SEED [--minutes M] [--out runs.csv]
conditions: a (dish), b (food_grid), c (chemotaxis, Odor gain 1300), c0 (chemotaxis, default gain)
"""
import argparse
import csv
import importlib
import json
import os
import random
import time

import numpy as np

os.environ.setdefault('SDL_AUDIODRIVER', 'dummy')
p = argparse.ArgumentParser()
p.add_argument('cond')
p.add_argument('seed', type=int)
p.add_argument('--minutes', type=float, default=None)
p.add_argument('--out', default='runs.csv')
p.add_argument('--perlarva', default='perlarva.csv')
a = p.parse_args()
s = a.seed

# Seed also BEFORE import: larvaworld draws the shared oscillator initial phase
# (RandomizedPhase default) once at import with np.random -> make it reproducible per seed.
random.seed(s)
np.random.seed(s)
t_imp = time.time()
larvaworld_lib = importlib.import_module('larvaworld.lib')   # imported after seeding, see above
reg, sim = larvaworld_lib.reg, larvaworld_lib.sim

t_imp = time.time() - t_imp

EXP = {'a': 'dish', 'b': 'food_grid', 'c': 'chemotaxis', 'c0': 'chemotaxis'}[a.cond]
DUR = {'a': 5.0, 'b': 10.0, 'c': 5.0, 'c0': 5.0}[a.cond]
if a.minutes is not None:
    DUR = a.minutes

conf = reg.conf.Exp.expand(EXP)      # registered experiment, models expanded
conf.duration = DUR
conf.enrichment = None                # no enrichment (avoids KeyError front_orientation_velocity)
gid = next(iter(conf.larva_groups))
if a.cond == 'c':
    conf.larva_groups[gid].model.brain.olfactor.gain_dict['Odor'] = 1300.0
phi0_crawler = None

# Seed the global RNGs (python random + numpy legacy) right before the model is built.
random.seed(s)
np.random.seed(s)
r = sim.ExpRun(experiment=EXP, parameters=conf, duration=DUR, store_data=False,
               screen_kws={'show_display': False, 'vis_mode': None},
               _record_manifest=False)

REC = {'pos': [], 'state': [], 'phi0': None}
def my_update(self=r):
    if REC['phi0'] is None:
        REC['phi0'] = float(self.agents[0].brain.locomotor.crawler.phi)
    # called by agentpy after every model step (replaces the dataset collector
    # ExpRun.update, which only fed the dataset we do not use)
    REC['pos'].append([tuple(ag.get_position()) for ag in self.agents])
    REC['state'].append([ag.brain.locomotor.intermitter.cur_state for ag in self.agents])
r.update = my_update

t0 = time.time()
r.run(seed=s, display=False)
wall = time.time() - t0

dt = r.dt
agents = list(r.agents)
rows = []
src = None
for so in r.sources:
    if getattr(so, 'unique_id', None) == 'Source':
        src = np.array(so.get_position())
# agentpy calls update() once after setup (t=0, initial pose) and then after every step:
# row 0 = initial pose, row k = pose after step k (k=1..Nsteps)
P = np.array(REC['pos'])          # (Nsteps+1, Nlarvae, 2)
ST = np.array(REC['state'], dtype=object)       # (Nsteps+1, Nlarvae); row 0 = None
Nsteps = P.shape[0] - 1
for i, ag in enumerate(agents):
    it = ag.brain.locomotor.intermitter
    d = {}
    d['Npauses'] = it.Npauses
    d['Nstridechains'] = it.Nstridechains
    d['Nfeeds'] = it.Nfeeds
    d['Nfeeds_success'] = it.Nfeeds_success
    d['Nfeeds_fail'] = it.Nfeeds_fail
    d['Nfeedchains'] = it.Nfeedchains
    d['Nstrides'] = int(sum(it.stridechain_lengths))
    d['pause_dur_mean'] = float(np.mean(it.pause_durs)) if len(it.pause_durs) else np.nan
    d['stridechain_len_mean'] = float(np.mean(it.stridechain_lengths)) if len(it.stridechain_lengths) else np.nan
    d['amount_eaten'] = float(ag.amount_eaten)
    d['on_food_dur_ratio'] = float(ag.cum_food_detected * dt / ag.cum_dur) if ag.cum_dur else np.nan
    xy = P[:, i, :]
    # speeds of steps 2..N (as the larvaworld dataset: step 1 NaN)
    sp = np.linalg.norm(np.diff(xy[1:], axis=0), axis=1) / dt
    d['v_mu'] = float(np.mean(sp)) * 1000
    d['exec_fraction'] = float(np.mean(ST[1:, i] == 'exec'))   # state after each step 1..N
    d['cum_dst'] = float(ag.cum_dst) * 1000
    x0 = xy[0]                       # initial (placement) position
    for T in (40, 60):
        k = round(T / dt)       # pose after step k, i.e. at t = k*dt
        d[f'dsp_0_{T}'] = float(np.linalg.norm(xy[k] - x0)) * 1000 if k <= Nsteps else np.nan
    d['final_dst_to_Source'] = float(np.linalg.norm(xy[-1] - src)) * 1000 if src is not None else np.nan
    rows.append(d)

keys = [k for k in rows[0] if not k.startswith('_')]
out = {'condition': a.cond, 'seed': s, 'experiment': EXP, 'duration_min': DUR, 'Nsteps': Nsteps,
       'n_larvae': len(rows)}
for k in keys:
    out[k] = float(np.nanmean([d[k] for d in rows]))
out['wall_s'] = round(wall, 1)
out['import_s'] = round(t_imp, 1)
out['phi0_crawler'] = round(REC['phi0'], 4)
olf = getattr(agents[0].brain, 'olfactor', None)
out['olf_gain_Odor'] = (float(olf.gain.get('Odor', np.nan)) if olf is not None else '')
per_larva = [dict(condition=a.cond, seed=s, larva=i, **{k: d[k] for k in keys}) for i, d in enumerate(rows)]
for fn, rr in ((a.out, [out]), (a.perlarva, per_larva)):
    old_rows, fields = [], list(rr[0].keys())
    if os.path.exists(fn):
        with open(fn, newline='') as f:
            rd = csv.DictReader(f)
            old_rows = list(rd)
            fields = list(rd.fieldnames) + [k for k in fields if k not in rd.fieldnames]
    with open(fn + '.tmp', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields, restval='')
        w.writeheader()
        w.writerows(old_rows + rr)
    os.replace(fn + '.tmp', fn)
print(json.dumps(out))
