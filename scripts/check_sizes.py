#!/usr/bin/env python3
"""The size rules of the house (docs/architecture.md, issue 23), checked on the source tree:
- no source file (.h, .cpp, .cu) under jointnas/ and tools/ over 800 lines;
- no function over 120 lines outside CUDA kernels (.cu files: __global__ / __device__ code is
  exempt; their host functions are held to the same limit);
- no file under tools/ over 200 lines (the CLI is a thin adapter).
Function lengths come from lizard (PyPI, pinned in scripts/setup.sh), which parses C++ functions
and lambdas. Exit 1 and one line per violation when a rule is broken.
    python3 scripts/check_sizes.py [REPO]
"""
import pathlib
import sys

import lizard

MAX_FILE, MAX_FUNCTION, MAX_TOOLS_FILE = 800, 120, 200


def main() -> int:
    repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
    bad = []
    files = [p for d in ("jointnas", "tools") for p in sorted((repo / d).rglob("*")) if p.suffix in (".h", ".cpp", ".cu")]
    for p in files:
        rel = p.relative_to(repo)
        text = p.read_text(encoding="utf-8", errors="replace")
        lines = text.count("\n")
        limit = MAX_TOOLS_FILE if rel.parts[0] == "tools" else MAX_FILE
        if lines > limit:
            bad.append(f"{rel}: {lines} lines (at most {limit})")
        info = lizard.analyze_file.analyze_source_code(str(p), text)
        for f in info.function_list:
            if p.suffix == ".cu":
                head = "\n".join(text.splitlines()[max(0, f.start_line - 4):f.start_line])
                if "__global__" in head or "__device__" in head:
                    continue
            if f.length > MAX_FUNCTION:
                bad.append(f"{rel}:{f.start_line}: {f.name} is {f.length} lines (at most {MAX_FUNCTION})")
    for b in bad:
        print(b)
    print(f"checked {len(files)} files: {'ok' if not bad else f'{len(bad)} over the limits'}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
