#!/usr/bin/env python3
"""Import cycles between the top-level modules of a crate (`core/src` by default).

Every `crate::<module>` path in the code (not the comments) of a module's files (a directory module's files all count as that
module) is an edge; the strongly connected components with more than one module are the
cycles. Prints each cycle and the count: `python3 scripts/module-cycles.py [src-dir]`.
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "core", "src")
modules = {}
for entry in sorted(os.listdir(src)):
    path = os.path.join(src, entry)
    if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
        modules[entry[:-3]] = [path]
    elif os.path.isdir(path):
        modules[entry] = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".rs")]
edges = {m: set() for m in modules}
for m, files in modules.items():
    for f in files:
        # Code only: a path in a comment or doc link is not an import.
        text = "\n".join(line.split("//")[0] for line in open(f, encoding="utf-8"))
        for other in re.findall(r"crate::(\w+)", text):
            if other in modules and other != m:
                edges[m].add(other)
        # `use crate::{a, b::c}` groups
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            for other in re.findall(r"(?:^|,)\s*(\w+)", group):
                if other in modules and other != m:
                    edges[m].add(other)

index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(edges[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in sorted(modules):
    if v not in index:
        visit(v)
for comp in sccs:
    pairs = [f"{a}→{b}" for a in comp for b in sorted(edges[a]) if b in comp]
    print(f"cycle among {', '.join(comp)}: {'; '.join(pairs)}")
print(f"{len(sccs)} import cycle(s) among {len(modules)} modules of {os.path.normpath(src)}")
