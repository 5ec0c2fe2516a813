"""`heatline.hotFunctions`: the profile's heaviest functions for a functions view (VS Code's "Hot
functions" tree), each placed on its `def` line so a click lands on the function, not inside it.

The ranking is the sampler's (`HeatIndex.hottest_functions`); the def line is what the profiled
file's source says (`sampler.sourcefiles`). Functions with self time come first, by self; then,
while `count` allows, those only on the stack (a `main`) with at least ON_STACK_MIN_SHARE of the
samples, by total, so the view also shows where the time is spent from, without the import
machinery a run passed through once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sampler.sourcefiles import def_line_in

from .arguments import HotFunctionsArgs, parse
from .commands import _location, _require_view, command

if TYPE_CHECKING:
    from .app import HeatlineServer
    from .paths import PathMatcher

ON_STACK_MIN_SHARE = 0.01


def _def_line(matcher: PathMatcher, filename: str, funcname: str, first_line: int) -> int:
    """The 1-based line of the function's `def` in the profiled file; its first sampled line
    when the file cannot be read or holds no such def."""
    path = matcher.doc_path_for(filename)
    if path is None or first_line <= 0:
        return first_line
    return def_line_in(path, funcname, first_line) or first_line


@command("heatline.hotFunctions")
async def hot_functions(ls: HeatlineServer, name: str, args: list) -> list[dict[str, Any]]:
    a = parse(name, HotFunctionsArgs, args)
    view = _require_view(ls)
    index = view.index()
    matcher = view.matcher(ls.roots)
    total = index.total_samples
    ranked = index.hottest_functions(a.count, by="self")
    if len(ranked) < a.count:
        seen = {(filename, funcname) for filename, funcname, *_ in ranked}
        on_stack = [f for f in index.hottest_functions(a.count, by="total")
                    if (f[0], f[1]) not in seen and f[4] >= ON_STACK_MIN_SHARE * total]
        ranked += on_stack[:a.count - len(ranked)]
    out = []
    for filename, funcname, first_line, self_n, total_n in ranked:
        line = _def_line(matcher, filename, funcname, first_line)
        item = _location(ls, matcher, filename, line, funcname, self_n, total_n, total)
        item["selfShare"] = self_n / total if total else 0.0
        item["totalShare"] = total_n / total if total else 0.0
        out.append(item)
    return out
