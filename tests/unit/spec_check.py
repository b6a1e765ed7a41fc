#!/usr/bin/python3
"""Compare include/amqp_methods.def with the AMQP 0-9-1 XML specification.

The table is printed by tests/unit/spec_dump (built by make check):

    METHOD class_id method_id class.method synchronous content ext
    FIELD class_id method_id index name type

and compared with RabbitMQ's extended 0-9-1 XML (Debian package amqp-specs)
class by class, method by method, field by field: names ('-' -> '_'),
primitive types (domains resolved), order and index, synchronous and content
flags.  Every XML method must be in the table, every non-extension row of
the table must be in the XML, and extension rows (AMQP_METHOD_EXT) must not
reuse an id the XML defines.  The XML does not describe RabbitMQ's
extensions (connection.blocked/unblocked, connection.update-secret/-ok), so
those rows are compared the same way with EXTENSIONS below, transcribed from
RabbitMQ's amqp-rabbitmq-0.9.1.json codegen spec; every one must be present
and an extension row that is not one of them fails.

Environment: WARREN_BUILDDIR (where tests/unit/spec_dump is), optionally
WARREN_AMQP_XML to use another copy of the XML.

Prints one line "RESULT: P passed, F failed, S skipped" last and exits 1 if
anything failed.  P counts methods that matched (XML and extensions), F
mismatches; nothing is skipped any more (S stays for the output format).
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

XML_PATH = "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"
PRIMITIVES = {"octet", "short", "long", "longlong", "shortstr", "longstr",
              "bit", "table", "timestamp"}

# RabbitMQ's extensions to 0-9-1 that its XML leaves out, as in
# rabbitmq-codegen's amqp-rabbitmq-0.9.1.json (class connection, 10).
EXTENSIONS = {
    (10, 60): {"name": "connection.blocked", "sync": False,
               "content": False, "fields": [("reason", "shortstr")]},
    (10, 61): {"name": "connection.unblocked", "sync": False,
               "content": False, "fields": []},
    (10, 70): {"name": "connection.update_secret", "sync": True,
               "content": False,
               "fields": [("new_secret", "longstr"), ("reason", "shortstr")]},
    (10, 71): {"name": "connection.update_secret_ok", "sync": True,
               "content": False, "fields": []},
}


class Result:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def ok(self, what):
        self.passed += 1
        print("ok    %s" % what)

    def fail(self, what, why):
        self.failed += 1
        print("FAIL  %s: %s" % (what, why))

    def skip(self, what, why):
        self.skipped += 1
        print("skip  %s: %s" % (what, why))

    def finish(self):
        print("RESULT: %d passed, %d failed, %d skipped"
              % (self.passed, self.failed, self.skipped))
        sys.exit(1 if self.failed else 0)


def norm(name):
    return name.replace("-", "_")


# ---- the XML ------------------------------------------------------------------

def resolve_type(field, domains):
    """The primitive type of an XML <field>, following domain chains."""
    t = field.get("type")
    if t is None:
        t = field.get("domain")
    if t is None:
        raise ValueError("field %r has neither type nor domain"
                         % field.get("name"))
    seen = set()
    while t not in PRIMITIVES:
        if t in seen:
            raise ValueError("domain loop at %r" % t)
        seen.add(t)
        if t not in domains:
            raise ValueError("unknown domain %r" % t)
        t = domains[t]
    return t


def load_xml(path):
    """{(cid, mid): {name, sync, content, fields: [(name, type)]}}"""
    root = ET.parse(path).getroot()
    domains = {d.get("name"): d.get("type") for d in root.findall("domain")}
    methods = {}
    problems = []
    for cls in root.findall("class"):
        cname = cls.get("name")
        cid = int(cls.get("index"))
        for m in cls.findall("method"):
            mid = int(m.get("index"))
            what = "%s.%s" % (cname, m.get("name"))
            fields = []
            try:
                # Only the method's own fields: class-level <field>s are the
                # content properties, not method arguments.
                for f in m.findall("field"):
                    fields.append((norm(f.get("name")),
                                   resolve_type(f, domains)))
            except ValueError as e:
                problems.append((what, str(e)))
                continue
            if (cid, mid) in methods:
                problems.append((what, "id %d/%d twice in the XML"
                                 % (cid, mid)))
                continue
            methods[(cid, mid)] = {
                "name": "%s.%s" % (norm(cname), norm(m.get("name"))),
                "sync": m.get("synchronous", "0") == "1",
                "content": m.get("content", "0") == "1",
                "fields": fields,
            }
    return methods, problems


# ---- the table ------------------------------------------------------------------

def load_dump(path):
    """(rows in order, problems); each row as in load_xml plus 'ext'."""
    out = subprocess.run([path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError("%s exited with %d: %s"
                           % (path, out.returncode, out.stderr.strip()))
    rows = []
    problems = []
    cur = None
    for lineno, line in enumerate(out.stdout.splitlines(), 1):
        tok = line.split()
        where = "spec_dump line %d" % lineno
        if len(tok) == 7 and tok[0] == "METHOD":
            try:
                cid, mid = int(tok[1]), int(tok[2])
                flags = [int(x) for x in tok[4:7]]
            except ValueError:
                problems.append((where, "bad numbers: %r" % line))
                cur = None
                continue
            if any(f not in (0, 1) for f in flags) or "." not in tok[3]:
                problems.append((where, "bad METHOD line: %r" % line))
                cur = None
                continue
            cur = {"cid": cid, "mid": mid, "name": tok[3],
                   "sync": flags[0] == 1, "content": flags[1] == 1,
                   "ext": flags[2] == 1, "fields": []}
            rows.append(cur)
        elif len(tok) == 6 and tok[0] == "FIELD":
            try:
                cid, mid, idx = int(tok[1]), int(tok[2]), int(tok[3])
            except ValueError:
                problems.append((where, "bad numbers: %r" % line))
                continue
            if cur is None or (cid, mid) != (cur["cid"], cur["mid"]):
                problems.append((where, "FIELD outside its METHOD: %r"
                                 % line))
                continue
            if idx != len(cur["fields"]):
                problems.append((where, "%s: field index %d, expected %d"
                                 % (cur["name"], idx, len(cur["fields"]))))
            cur["fields"].append((tok[4], tok[5]))
        else:
            problems.append((where, "unparseable: %r" % line))
    return rows, problems


# ---- comparison -------------------------------------------------------------------

def compare(row, spec):
    """List of differences between one table row and its XML method."""
    diffs = []
    if row["name"] != spec["name"]:
        diffs.append("name %s, XML says %s" % (row["name"], spec["name"]))
    if row["sync"] != spec["sync"]:
        diffs.append("synchronous %d, XML says %d"
                     % (row["sync"], spec["sync"]))
    if row["content"] != spec["content"]:
        diffs.append("content %d, XML says %d"
                     % (row["content"], spec["content"]))
    ours, theirs = row["fields"], spec["fields"]
    for i in range(max(len(ours), len(theirs))):
        if i >= len(ours):
            diffs.append("field %d %s %s missing from the table"
                         % (i, theirs[i][0], theirs[i][1]))
        elif i >= len(theirs):
            diffs.append("field %d %s %s not in the XML"
                         % (i, ours[i][0], ours[i][1]))
        elif ours[i] != theirs[i]:
            diffs.append("field %d is %s %s, XML says %s %s"
                         % (i, ours[i][0], ours[i][1],
                            theirs[i][0], theirs[i][1]))
    return diffs


def main():
    res = Result()
    xml_path = os.environ.get("WARREN_AMQP_XML", XML_PATH)
    if not os.path.isfile(xml_path):
        res.fail("spec", "%s not found: install the Debian package "
                 "amqp-specs (scripts/bootstrap does)" % xml_path)
        res.finish()

    builddir = os.environ.get("WARREN_BUILDDIR", os.getcwd())
    dump = os.path.join(builddir, "tests", "unit", "spec_dump")
    if not os.access(dump, os.X_OK):
        res.fail("spec_dump", "%s not built (run make check, which builds "
                 "check_PROGRAMS; WARREN_BUILDDIR=%s)" % (dump, builddir))
        res.finish()

    try:
        spec, xml_problems = load_xml(xml_path)
    except ET.ParseError as e:
        res.fail("spec", "%s: %s" % (xml_path, e))
        res.finish()
    try:
        rows, dump_problems = load_dump(dump)
    except (OSError, RuntimeError) as e:
        res.fail("spec_dump", str(e))
        res.finish()

    for what, why in xml_problems + dump_problems:
        res.fail(what, why)
    if len(spec) < 50:
        res.fail("spec", "only %d methods in %s" % (len(spec), xml_path))
    if not rows:
        res.fail("spec_dump", "printed no methods")

    table = {}
    for row in rows:
        key = (row["cid"], row["mid"])
        if key in table:
            res.fail(row["name"], "id %d/%d also used by %s"
                     % (key[0], key[1], table[key]["name"]))
            continue
        table[key] = row

    # Every XML method is in the table, as a regular row, and matches.
    for key in sorted(spec):
        want = spec[key]
        what = "%s (%d/%d)" % (want["name"], key[0], key[1])
        row = table.get(key)
        if row is None:
            res.fail(what, "in the XML, not in amqp_methods.def")
        elif row["ext"]:
            res.fail(what, "AMQP_METHOD_EXT row %s clashes with the XML id"
                     % row["name"])
        else:
            diffs = compare(row, want)
            if diffs:
                res.fail(what, "; ".join(diffs))
            else:
                res.ok(what)

    # Every regular row is in the XML; extension rows match EXTENSIONS.
    for key, row in table.items():
        what = "%s (%d/%d)" % (row["name"], key[0], key[1])
        if key in spec:
            continue
        if not row["ext"]:
            res.fail(what, "in amqp_methods.def, not in the XML "
                     "(mark RabbitMQ extensions AMQP_METHOD_EXT)")
        elif key not in EXTENSIONS:
            res.fail(what, "AMQP_METHOD_EXT row that is not a known "
                     "RabbitMQ extension (add it to EXTENSIONS)")
        else:
            diffs = compare(row, EXTENSIONS[key])
            if diffs:
                res.fail(what, "; ".join(diffs))
            else:
                res.ok(what + " [RabbitMQ extension]")

    # Every extension is in the table, marked as one.
    for key in sorted(EXTENSIONS):
        want = EXTENSIONS[key]
        row = table.get(key)
        what = "%s (%d/%d)" % (want["name"], key[0], key[1])
        if key in spec:
            res.fail(what, "listed in EXTENSIONS but defined by the XML")
        elif row is None:
            res.fail(what, "RabbitMQ extension missing from "
                     "amqp_methods.def")
        elif not row["ext"]:
            res.fail(what, "not marked AMQP_METHOD_EXT")

    res.finish()


if __name__ == "__main__":
    main()
