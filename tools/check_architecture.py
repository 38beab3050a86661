#!/usr/bin/env python3
"""Holds the code to the map of the layers (docs/architecture.md), as the build and the tests run it.

    check_architecture.py MAP includes          every #include in src/ and include/attnscope/
    check_architecture.py MAP symbols           every function a compiled module or command uses
    check_architecture.py MAP exports LIBRARY   what the shared library exports (nm -D)
    check_architecture.py MAP docs              docs/architecture.md against the map and the tree

MAP is written by CMake (build/architecture.map) from the ats_module() calls in CMakeLists.txt:
for each module the public headers it owns and the modules it may use, plus the object files
of every module and of the commands. Whatever CMakeLists.txt says, the map itself must keep the
design's rules (FORBIDDEN below): a change that needs one of those edges is a change of the
design, not of a list.

Exits 1 with one line per violation (file:line: what and why), 0 when everything holds.
Standard library only: the build runs it before anything is installed in .venv."""
import os
import re
import subprocess
import sys

# The design's rules. measure and topology work on plain arrays, whatever made them; the model
# draws nothing; the commands are a user of the library, never a part of it.
FORBIDDEN = [
    ("measure", "model", "measure works on attention from anywhere, never on a model"),
    ("topology", "model", "topology works on distances from anywhere, never on a model"),
    ("model", "render", "the model computes; it draws nothing"),
]
PROGRAM = "cli"  # src/cli: the commands, built on the public headers only
UMBRELLA = "attnscope.h"  # includes every public header: for users, not for the library
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


class Map:
    def __init__(self, path):
        self.root = None
        self.uses = {}  # module -> set of modules it may use
        self.headers = {}  # public header file name -> owning module
        self.objects = {}  # module (or PROGRAM) -> object files
        with open(path) as f:
            for line in f:
                words = line.split()
                if not words:
                    continue
                if words[0] == "root":
                    self.root = line.split(None, 1)[1].strip()
                elif words[0] == "module":
                    name = words[1]
                    i, j = words.index("headers"), words.index("uses")
                    self.uses[name] = set(words[j + 1:])
                    for h in words[i + 1:j]:
                        self.headers[h] = name
                elif words[0] == "object":
                    self.objects.setdefault(words[1], []).append(line.split(None, 2)[2].strip())

    def closure(self, module):
        seen, todo = set(), [module]
        while todo:
            for dep in self.uses.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen


def check_map(m):
    """The map itself: known modules only, no cycle, none of the design's forbidden edges."""
    errors = []
    for mod, deps in sorted(m.uses.items()):
        for dep in sorted(deps):
            if dep == PROGRAM:
                errors.append(f"CMakeLists.txt: {mod} may not use {PROGRAM}: nothing in the "
                              f"library depends on the commands")
            elif dep not in m.uses:
                errors.append(f"CMakeLists.txt: {mod} uses {dep}, which is no module")
        if mod in m.closure(mod):
            errors.append(f"CMakeLists.txt: {mod} uses itself through the map (a cycle)")
        for src, dst, why in FORBIDDEN:
            if mod == src and dst in m.closure(mod):
                errors.append(f"CMakeLists.txt: {src} may not use {dst}, even through another "
                              f"module: {why}")
    if m.uses.get("core"):
        errors.append("CMakeLists.txt: core is the bottom layer and uses no other module")
    return errors


def owner_of_source(m, rel):
    """Module that owns a file under src/ or include/attnscope/ (None for anything else)."""
    parts = rel.split(os.sep)
    if len(parts) == 3 and parts[0] == "include" and parts[1] == "attnscope":
        return m.headers.get(parts[2])
    if len(parts) >= 3 and parts[0] == "src":
        return parts[1]
    return None


def check_includes(m):
    errors = check_map(m)
    root = m.root
    modules = set(m.uses) | {PROGRAM}
    for d in sorted(os.listdir(os.path.join(root, "src"))):
        if os.path.isdir(os.path.join(root, "src", d)) and d not in modules:
            errors.append(f"src/{d}: a folder that is no module: add ats_module({d} ...) to "
                          f"CMakeLists.txt and docs/architecture.md")
    for h in sorted(os.listdir(os.path.join(root, "include", "attnscope"))):
        if h.endswith(".h") and h != UMBRELLA and h not in m.headers:
            errors.append(f"include/attnscope/{h}: no module owns it (HEADERS in CMakeLists.txt)")

    files = []
    for top in ("src", os.path.join("include", "attnscope")):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            files += [os.path.join(dirpath, n) for n in names if n.endswith((".c", ".h"))]
    for path in sorted(files):
        rel = os.path.relpath(path, root)
        mod = owner_of_source(m, rel)
        if mod is None:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        for no, line in enumerate(lines, 1):
            hit = INCLUDE_RE.match(line)
            if not hit:
                continue
            bracket, name = hit.groups()
            where = f"{rel}:{no}"
            if name.startswith("attnscope/"):
                header = name[len("attnscope/"):]
                if header == UMBRELLA:
                    if mod != PROGRAM:
                        errors.append(f"{where}: includes {name}, which is every module; "
                                      f"include the headers of the modules {mod} uses")
                    continue
                dst = m.headers.get(header)
                if dst is None:
                    errors.append(f"{where}: includes {name}, which no module owns")
                    continue
                kind = f"{name} (public header of {dst})"
            elif bracket == "<":
                continue  # the C library and Debian's
            else:
                target = os.path.normpath(os.path.join(os.path.dirname(path), name))
                trel = os.path.relpath(target, root)
                if not os.path.exists(target):
                    errors.append(f"{where}: includes \"{name}\", which is not beside it "
                                  f"(a module includes its own headers by name, others' as "
                                  f"\"attnscope/...\")")
                    continue
                dst = owner_of_source(m, trel)
                if dst is None:
                    errors.append(f"{where}: includes {trel}, which is outside the library")
                    continue
                if trel.startswith("src" + os.sep) and dst != mod:
                    errors.append(f"{where}: includes {trel}, a private header of {dst}; only "
                                  f"{dst} may include it (use include/attnscope/ instead)")
                    continue
                kind = trel
            if dst == mod:
                continue
            if dst == PROGRAM:
                errors.append(f"{where}: includes {kind}: nothing in the library includes "
                              f"the commands")
            elif mod != PROGRAM and dst not in m.uses.get(mod, ()):
                errors.append(f"{where}: includes {kind}, but {mod} may not use {dst} "
                              f"(ats_module({mod} ... USES ...) in CMakeLists.txt)")
    return errors


def strip_header(text):
    """The declarations of a public header as C sees them: no comments, no preprocessor lines,
    no C++ wrapper, no attributes, no struct/enum bodies."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"#\s*ifdef\s+__cplusplus.*?#\s*endif", " ", text, flags=re.S)
    text = re.sub(r"\\\n", " ", text)
    text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)
    text = remove_balanced(text, "__attribute__", "(", ")")
    return remove_balanced(text, "", "{", "}")


def remove_balanced(text, keyword, open_, close):
    out, i = [], 0
    while True:
        j = text.find(keyword + open_, i) if keyword else text.find(open_, i)
        if j < 0:
            return "".join(out) + text[i:]
        out.append(text[i:j])
        k = j + len(keyword)
        depth = 0
        while k < len(text):
            depth += {open_: 1, close: -1}.get(text[k], 0)
            k += 1
            if depth == 0:
                break
        i = k


def declared_names(root):
    """Every function and object that include/attnscope/*.h declares: name -> header."""
    names = {}
    hdir = os.path.join(root, "include", "attnscope")
    for h in sorted(os.listdir(hdir)):
        if not h.endswith(".h"):
            continue
        with open(os.path.join(hdir, h), encoding="utf-8") as f:
            text = strip_header(f.read())
        for stmt in text.split(";"):
            stmt = " ".join(stmt.split())
            if not stmt or stmt.startswith("typedef "):
                continue
            if re.fullmatch(r"(struct|union|enum) \w+", stmt):
                continue  # a forward declaration of a type
            pointer = re.match(r"[^(]*\(\s*\*\s*(\w+)\s*\)", stmt)
            call = re.search(r"(\w+)\s*\(", stmt)
            if pointer:
                names[pointer.group(1)] = h
            elif call:
                names[call.group(1)] = h
            else:
                var = re.search(r"(\w+)\s*(\[[^\]]*\]\s*)*(=.*)?$", stmt)
                if not var:
                    raise SystemExit(f"include/attnscope/{h}: cannot read the declaration "
                                     f"'{stmt}'")
                names[var.group(1)] = h
    return names


def nm(args):
    out = subprocess.run(["nm", "-P"] + args, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].endswith(":"):
            yield parts[0].split("@")[0], parts[1]


def object_source(m, obj):
    """src/<module>/<file>.c for an object file CMake made from it."""
    hit = re.search(r"/(src/.*)\.o$", obj)
    return hit.group(1) if hit else os.path.relpath(obj, m.root)


def check_symbols(m):
    errors = check_map(m)
    public = declared_names(m.root)
    defined = {}  # symbol -> module
    for mod, objs in m.objects.items():
        if mod == PROGRAM:
            continue
        for name, _ in nm(["--defined-only", "--extern-only"] + objs):
            defined[name] = mod
    for h_name, header in public.items():
        owner = m.headers.get(header)
        if h_name in defined and owner and defined[h_name] != owner:
            errors.append(f"include/attnscope/{header}: declares {h_name}, which "
                          f"{defined[h_name]} defines; a module declares its functions in the "
                          f"headers it owns")
    for mod, objs in sorted(m.objects.items()):
        for obj in objs:
            for name, _ in nm(["--undefined-only", obj]):
                dst = defined.get(name)
                if dst is None or dst == mod:
                    continue
                src = object_source(m, obj)
                if name not in public:
                    errors.append(f"{src}: calls {name}, an internal function of {dst}; "
                                  f"modules and commands use each other's public headers only")
                elif mod != PROGRAM and dst not in m.uses.get(mod, ()):
                    errors.append(f"{src}: calls {name} from {dst}, but {mod} may not use "
                                  f"{dst}")
    return sorted(set(errors))


def check_exports(m, library):
    declared = declared_names(m.root)
    exported = {name for name, _ in nm(["-D", "--defined-only", library])}
    errors = [f"{library}: exports {n}, which include/attnscope/*.h does not declare"
              for n in sorted(exported - set(declared))]
    errors += [f"include/attnscope/{declared[n]}: declares {n}, which {library} does not export"
               for n in sorted(set(declared) - exported)]
    if not errors:
        print(f"{library}: exports exactly the {len(declared)} names the public headers declare")
    return errors


def check_docs(m):
    """docs/architecture.md's table of modules says what the map says, and every file path the
    page names exists, so the page cannot drift from the build unnoticed."""
    errors, rows = [], {}
    doc = os.path.join("docs", "architecture.md")
    with open(os.path.join(m.root, doc), encoding="utf-8") as f:
        text = f.read()
    for no, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) < 5 or cells[1] != f"`src/{cells[0]}`":
            continue
        headers = set(re.findall(r"`([^`]+)`", cells[2]))
        uses = set() if cells[3] in ("—", "-", "") else {u.strip() for u in cells[3].split(",")}
        rows[cells[0]] = (no, headers, uses)
    for mod in sorted(set(m.uses) | set(rows)):
        if mod not in rows:
            errors.append(f"{doc}: the table of modules has no row for {mod}")
            continue
        no, headers, uses = rows[mod]
        if mod not in m.uses:
            errors.append(f"{doc}:{no}: {mod} is no module in CMakeLists.txt")
            continue
        owned = {h for h, o in m.headers.items() if o == mod}
        if headers != owned:
            errors.append(f"{doc}:{no}: {mod} owns {', '.join(sorted(owned))}, the page says "
                          f"{', '.join(sorted(headers))}")
        if uses != m.uses[mod]:
            errors.append(f"{doc}:{no}: {mod} may use {', '.join(sorted(m.uses[mod])) or '—'}, "
                          f"the page says {', '.join(sorted(uses)) or '—'}")
    planned = False  # a "Planned" section names what does not exist yet
    for no, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            planned = "planned" in line.lower()
        if planned:
            continue
        for path in re.findall(r"`([A-Za-z0-9_-][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.-]+)+/?)`", line):
            if not os.path.exists(os.path.join(m.root, path)):
                errors.append(f"{doc}:{no}: names {path}, which does not exist")
    return errors


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in ("includes", "symbols", "exports", "docs"):
        raise SystemExit(__doc__)
    m = Map(sys.argv[1])
    what = sys.argv[2]
    if what == "includes":
        errors = check_includes(m)
    elif what == "symbols":
        errors = check_symbols(m)
    elif what == "docs":
        errors = check_docs(m)
    else:
        if len(sys.argv) != 4:
            raise SystemExit(__doc__)
        errors = check_exports(m, sys.argv[3])
    for e in errors:
        print(f"architecture: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
