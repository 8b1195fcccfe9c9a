#!/usr/bin/env python3
"""The public API of the crates embedders use, as a committed listing.

    python3 scripts/public_api.py           # rewrites api/CRATE.txt
    python3 scripts/public_api.py --check   # fails on any difference

Each crate (default features) is documented as rustdoc JSON (nightly
rustdoc: `-Z unstable-options --output-format json`); the listing has one
line per public item reachable from the crate root: modules, re-exports,
structs with their public fields, enums with their variants, traits with
their methods, functions and inherent methods with their signatures,
constants, statics, type aliases, macros, and the trait implementations of
each type (auto traits and blanket implementations left out). Sorted, so a
change to the surface is a small, deliberate diff in review.
"""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["earlymod-core", "earlymod", "earlymod-decompress"]
API = os.path.join(REPO, "api")
TARGET = os.path.join(REPO, "target", "apijson")


def rustdoc_json(package):
    cmd = ["cargo", "+nightly", "rustdoc", "-q", "--locked", "-p", package, "--lib",
           "--target-dir", TARGET, "--", "-Z", "unstable-options", "--output-format", "json"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"public_api: rustdoc failed for {package}:\n{r.stderr}")
    path = os.path.join(TARGET, "doc", package.replace("-", "_") + ".json")
    with open(path) as f:
        return json.load(f)


class Render:
    """Types, generics and signatures of one crate's JSON, as Rust text."""

    def __init__(self, doc):
        self.doc = doc
        self.index = doc["index"]

    def path(self, p):
        name = p["path"].replace("$crate::", "")
        return name + self.args(p.get("args"))

    def args(self, a):
        if not a:
            return ""
        if "angle_bracketed" in a:
            ab = a["angle_bracketed"]
            parts = [self.arg(x) for x in ab["args"]]
            parts += [self.constraint(c) for c in ab.get("constraints", [])]
            return "<" + ", ".join(parts) + ">" if parts else ""
        if "parenthesized" in a:
            p = a["parenthesized"]
            out = "(" + ", ".join(self.ty(t) for t in p["inputs"]) + ")"
            if p.get("output"):
                out += " -> " + self.ty(p["output"])
            return out
        return ""

    def arg(self, x):
        if "type" in x:
            return self.ty(x["type"])
        if "lifetime" in x:
            return x["lifetime"]
        if "const" in x:
            return x["const"].get("expr", "_")
        return "_"

    def constraint(self, c):
        b = c.get("binding", {})
        if "equality" in b:
            eq = b["equality"]
            return c["name"] + " = " + (self.ty(eq["type"]) if "type" in eq else str(eq))
        if "constraint" in b:
            return c["name"] + ": " + self.bounds(b["constraint"])
        return c["name"]

    def bounds(self, bs):
        out = []
        for b in bs:
            if "trait_bound" in b:
                tb = b["trait_bound"]
                m = {"maybe": "?", "maybe_const": "~const "}.get(tb.get("modifier"), "")
                out.append(m + self.path(tb["trait"]))
            elif "outlives" in b:
                out.append(b["outlives"])
            elif "use" in b:
                out.append("use<" + ", ".join(str(x) for x in b["use"]) + ">")
        return " + ".join(out)

    def ty(self, t):
        if t is None:
            return "()"
        if isinstance(t, str):
            return "_" if t == "infer" else t
        k, v = next(iter(t.items()))
        if k == "resolved_path":
            return self.path(v)
        if k in ("generic", "primitive"):
            return v
        if k == "borrowed_ref":
            lt = v["lifetime"] + " " if v.get("lifetime") else ""
            return "&" + lt + ("mut " if v["is_mutable"] else "") + self.ty(v["type"])
        if k == "raw_pointer":
            return ("*mut " if v["is_mutable"] else "*const ") + self.ty(v["type"])
        if k == "slice":
            return "[" + self.ty(v) + "]"
        if k == "array":
            return "[" + self.ty(v["type"]) + "; " + v["len"] + "]"
        if k == "tuple":
            return "(" + ", ".join(self.ty(x) for x in v) + ("," if len(v) == 1 else "") + ")"
        if k == "impl_trait":
            return "impl " + self.bounds(v)
        if k == "dyn_trait":
            parts = [self.path(x["trait"]) for x in v["traits"]]
            if v.get("lifetime"):
                parts.append(v["lifetime"])
            return "dyn " + " + ".join(parts)
        if k == "qualified_path":
            tr = self.path(v["trait"]) if v.get("trait") else ""
            base = self.ty(v["self_type"])
            head = f"<{base} as {tr}>" if tr else base
            return head + "::" + v["name"] + self.args(v.get("args"))
        if k == "function_pointer":
            sig = v["sig"]
            ins = ", ".join(self.ty(x[1]) for x in sig["inputs"])
            out = " -> " + self.ty(sig["output"]) if sig.get("output") else ""
            return f"fn({ins}){out}"
        if k == "pat":
            return self.ty(v["type"])
        return k

    def generics(self, g):
        ps = []
        for p in g.get("params", []):
            kind = p["kind"]
            if "lifetime" in kind:
                o = kind["lifetime"].get("outlives") or []
                ps.append(p["name"] + (": " + " + ".join(o) if o else ""))
            elif "type" in kind:
                if kind["type"].get("is_synthetic"):
                    continue
                b = self.bounds(kind["type"].get("bounds", []))
                ps.append(p["name"] + (": " + b if b else ""))
            elif "const" in kind:
                ps.append("const " + p["name"] + ": " + self.ty(kind["const"]["type"]))
        return "<" + ", ".join(ps) + ">" if ps else ""

    def where(self, g):
        out = []
        for w in g.get("where_predicates", []):
            if "bound_predicate" in w:
                bp = w["bound_predicate"]
                out.append(self.ty(bp["type"]) + ": " + self.bounds(bp["bounds"]))
            elif "lifetime_predicate" in w:
                lp = w["lifetime_predicate"]
                out.append(lp["lifetime"] + ": " + " + ".join(lp["outlives"]))
            elif "eq_predicate" in w:
                ep = w["eq_predicate"]
                out.append(self.ty(ep["lhs"]) + " = " + self.ty(ep["rhs"].get("type")))
        return " where " + ", ".join(out) if out else ""

    def fn(self, name, f):
        h = f["header"]
        q = ("const " if h["is_const"] else "") + ("async " if h["is_async"] else "") + \
            ("unsafe " if h["is_unsafe"] else "")
        ins = []
        for n, t in f["sig"]["inputs"]:
            if n == "self":
                if t == {"generic": "Self"}:
                    ins.append("self")
                elif "borrowed_ref" in t and t["borrowed_ref"]["type"] == {"generic": "Self"}:
                    br = t["borrowed_ref"]
                    lt = br["lifetime"] + " " if br.get("lifetime") else ""
                    ins.append("&" + lt + ("mut " if br["is_mutable"] else "") + "self")
                else:
                    ins.append("self: " + self.ty(t))
            else:
                ins.append(f"{n}: {self.ty(t)}")
        out = " -> " + self.ty(f["sig"]["output"]) if f["sig"].get("output") else ""
        return f"{q}fn {name}{self.generics(f['generics'])}({', '.join(ins)}){out}" + \
            self.where(f["generics"])


def listing(doc):
    r = Render(doc)
    idx = r.index
    lines = set()

    def item(i):
        return idx.get(str(i)) or idx.get(i)

    def public(it):
        return it is not None and it["visibility"] == "public"

    def impls(prefix, ids):
        for i in ids:
            im = item(i)
            if im is None:
                continue
            x = im["inner"]["impl"]
            if x.get("is_synthetic") or x.get("blanket_impl") is not None:
                continue
            head = "impl" + r.generics(x["generics"])
            if x.get("trait"):
                if x["trait"]["path"] in ("StructuralPartialEq",):
                    continue
                lines.add(f"{head} {r.path(x['trait'])} for {r.ty(x['for'])}{r.where(x['generics'])}")
                continue
            for j in x["items"]:
                m = item(j)
                if public(m):
                    member(prefix, m)

    def member(prefix, m):
        """A method, associated type or constant of a trait or an impl."""
        k, v = next(iter(m["inner"].items()))
        if k == "function":
            lines.add(f"pub {r.fn(prefix + '::' + m['name'], v)}")
        elif k == "assoc_type":
            lines.add(f"pub type {prefix}::{m['name']}")
        elif k == "assoc_const":
            lines.add(f"pub const {prefix}::{m['name']}: {r.ty(v['type'])}")

    def walk(mod_id, prefix, depth=0):
        m = item(mod_id)
        for i in m["inner"]["module"]["items"]:
            it = item(i)
            if not public(it):
                continue
            k, v = next(iter(it["inner"].items()))
            name = it["name"]
            p = f"{prefix}::{name}" if name else prefix
            if k == "module":
                lines.add(f"pub mod {p}")
                walk(i, p, depth + 1)
            elif k == "use":
                star = "::*" if v["is_glob"] else ""
                lines.add(f"pub use {prefix}::{v['name']}{star} = {v['source']}")
            elif k == "struct":
                g = r.generics(v["generics"])
                kind = v["kind"]
                lines.add(f"pub struct {p}{g}{r.where(v['generics'])}")
                fields = kind.get("plain", {}).get("fields", []) if isinstance(kind, dict) else []
                if isinstance(kind, dict) and "tuple" in kind:
                    for n, f in enumerate(kind["tuple"]):
                        fi = item(f) if f is not None else None
                        if public(fi):
                            lines.add(f"pub {p}.{n}: {r.ty(fi['inner']['struct_field'])}")
                for f in fields:
                    fi = item(f)
                    if public(fi):
                        lines.add(f"pub {p}.{fi['name']}: {r.ty(fi['inner']['struct_field'])}")
                impls(p, v["impls"])
            elif k == "enum":
                lines.add(f"pub enum {p}{r.generics(v['generics'])}")
                for vid in v["variants"]:
                    va = item(vid)
                    vk = va["inner"]["variant"]["kind"]
                    if vk == "plain":
                        lines.add(f"pub {p}::{va['name']}")
                    elif "tuple" in vk:
                        ts = [r.ty(item(f)["inner"]["struct_field"]) if f is not None else "_"
                              for f in vk["tuple"]]
                        lines.add(f"pub {p}::{va['name']}({', '.join(ts)})")
                    else:
                        fs = [item(f) for f in vk["struct"]["fields"]]
                        body = ", ".join(f"{f['name']}: {r.ty(f['inner']['struct_field'])}"
                                         for f in fs)
                        lines.add(f"pub {p}::{va['name']} {{ {body} }}")
                impls(p, v["impls"])
            elif k == "union":
                lines.add(f"pub union {p}")
                impls(p, v["impls"])
            elif k == "function":
                lines.add(f"pub {r.fn(p, v)}")
            elif k == "trait":
                sup = r.bounds(v.get("bounds", []))
                lines.add(f"pub trait {p}{r.generics(v['generics'])}" + (f": {sup}" if sup else ""))
                for j in v["items"]:
                    member(p, item(j))
            elif k == "constant":
                lines.add(f"pub const {p}: {r.ty(v['type'])}")
            elif k == "static":
                lines.add(f"pub static {p}: {r.ty(v['type'])}")
            elif k == "type_alias":
                lines.add(f"pub type {p}{r.generics(v['generics'])} = {r.ty(v['type'])}")
            elif k == "macro":
                lines.add(f"macro {p}!")
            else:
                lines.add(f"pub {k} {p}")

    walk(doc["root"], item(doc["root"])["name"])
    return sorted(lines)


def main():
    check = "--check" in sys.argv[1:]
    os.makedirs(API, exist_ok=True)
    bad = []
    for c in CRATES:
        doc = rustdoc_json(c)
        text = "".join(line + "\n" for line in listing(doc))
        path = os.path.join(API, c + ".txt")
        old = open(path).read() if os.path.exists(path) else None
        n = text.count("\n")
        if check:
            if old != text:
                bad.append(c)
                import difflib
                diff = difflib.unified_diff((old or "").splitlines(), text.splitlines(),
                                            f"api/{c}.txt", f"{c} now", lineterm="", n=0)
                print("\n".join(list(diff)[:80]))
            else:
                print(f"public_api: {c}: {n} items, as recorded")
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"public_api: {c}: {n} items -> api/{c}.txt")
    if bad:
        sys.exit(f"public_api: the public API of {', '.join(bad)} changed: if that is meant, "
                 "run `make api` and commit api/")


if __name__ == "__main__":
    main()
