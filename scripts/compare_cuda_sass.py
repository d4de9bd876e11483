#!/usr/bin/env python3
"""Checks that a refactor left the device code unchanged: compiles every jointnas/**/*.cu of two
trees to sm_90 cubins (the flags of scripts/check_cuda_compile.sh), disassembles them and compares
the SASS of every kernel by name. Kernel names are demangled and the anonymous-namespace tag and
internal namespaces (wo::, aq::) removed, so that moving a kernel to another file or namespace is
no change; instruction addresses and encodings are dropped. Needs nvcc and a cuobjdump (the CUDA
toolkit's, or the one pip's triton ships).

usage: python3 scripts/compare_cuda_sass.py BASE_REV [HEAD_REV] [--only DIR|GLOB.cu]
       HEAD_REV default: the work tree; --only jointnas/quant compiles that folder's sources only,
       --only 'jointnas/quant/gemv_w*_cuda.cu' those files;
       JOBS=N compiles N files at a time (default 2).
Exit status 0 when every kernel of BASE is in HEAD with the same SASS; kernels only in one tree
are listed (a removed kernel is reported, not an error: say why in the change)."""
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tool(name, fallback_glob):
    path = shutil.which(name) or (os.path.join("/usr/local/cuda/bin", name) if os.path.exists(
        os.path.join("/usr/local/cuda/bin", name)) else None)
    if path:
        return path
    found = glob.glob(fallback_glob)
    if not found:
        sys.exit(f"error: {name} not found")
    return found[0]


def torch_dir():
    out = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                          "print(u.find_spec('torch').submodule_search_locations[0])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def tree(rev, dest):
    """The files of `rev` (None: the work tree as it is) under dest."""
    if rev is None:
        return REPO
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", REPO, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest


def compile_all(root, out, nvcc, torch, only):
    flags = ["-std=c++17", "-arch=sm_90", "-O3", "-DNDEBUG", "--expt-relaxed-constexpr",
             "--expt-extended-lambda", "-DJNAS_WITH_CUDA=1", "-DFMT_HEADER_ONLY=1",
             "-D_GLIBCXX_USE_CXX11_ABI=1", "-I" + root, "-isystem", torch + "/include",
             "-isystem", torch + "/include/torch/csrc/api/include"]
    # A folder, or a glob of .cu files (--only 'jointnas/quant/gemv_w*_cuda.cu').
    pattern = os.path.join(root, only) if only.endswith(".cu") else os.path.join(root, only, "**", "*.cu")
    sources = sorted(glob.glob(pattern, recursive=True))
    os.makedirs(out, exist_ok=True)

    def one(src):
        cubin = os.path.join(out, os.path.relpath(src, root).replace("/", "_") + ".cubin")
        r = subprocess.run([nvcc, *flags, "-cubin", src, "-o", cubin], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"error: {src} does not compile:\n{r.stderr[-4000:]}")
        return cubin

    with concurrent.futures.ThreadPoolExecutor(int(os.environ.get("JOBS", "2"))) as pool:
        return list(pool.map(one, sources))


def kernels(cubins, cuobjdump):
    found = {}
    for cubin in cubins:
        sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True).stdout
        parts = re.split(r"\n\s*Function : (\S+)\n", sass)
        for mangled, body in zip(parts[1::2], parts[2::2]):
            name = subprocess.run(["c++filt", mangled], capture_output=True, text=True).stdout.strip()
            name = re.sub(r"\(anonymous namespace\)::", "", name)
            name = re.sub(r"::(wo|aq)::", "::", name)
            lines = [re.sub(r"/\*[0-9a-f]{4,}\*/|/\* 0x[0-9a-f]+ \*/", "", l).strip()
                     for l in body.split("\n\t\t..........")[0].split("\n")]
            found[name] = "\n".join(l for l in lines if l)
    return found


def main():
    args, only = sys.argv[1:], "jointnas"
    if "--only" in args:
        i = args.index("--only")
        only = args[i + 1].rstrip("/")
        del args[i:i + 2]
    if len(args) not in (1, 2):
        sys.exit(__doc__)
    base_rev, head_rev = args[0], (args[1] if len(args) == 2 else None)
    nvcc = tool("nvcc", "/nonexistent")
    cuobjdump = tool("cuobjdump", os.path.join(os.path.dirname(torch_dir()), "triton", "backends",
                                               "nvidia", "bin", "cuobjdump"))
    torch = torch_dir()
    with tempfile.TemporaryDirectory() as tmp:
        base = kernels(compile_all(tree(base_rev, tmp + "/base"), tmp + "/base_out", nvcc, torch, only), cuobjdump)
        head = kernels(compile_all(tree(head_rev, tmp + "/head"), tmp + "/head_out", nvcc, torch, only), cuobjdump)
    same = [k for k in base if k in head and base[k] == head[k]]
    differ = [k for k in base if k in head and base[k] != head[k]]
    for k in sorted(differ):
        print("DIFFERENT SASS:", k)
    for k in sorted(set(base) - set(head)):
        print("only in", base_rev + ":", k)
    for k in sorted(set(head) - set(base)):
        print("only in", head_rev or "the work tree", ":", k)
    print(f"{len(same)} kernels with identical SASS, {len(differ)} different, "
          f"{len(set(base) - set(head))} only in base, {len(set(head) - set(base))} only in head")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
