package main

import (
	"flag"
	"fmt"
	"runtime/debug"
	"strings"
)

// printVersion prints what version returns for this binary.
func printVersion(args []string) error {
	fs := flag.NewFlagSet("wsgate version", flag.ContinueOnError)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Println(version(info))
	return nil
}

// version describes a build in one line: the module version, the VCS
// revision it was built from and the Go release, as in
//
//	wsgate v1.2.0 (revision 4b967eb1c2a0, 2026-11-21T10:00:00Z) go1.26.8
//	wsgate devel (revision 4b967eb1c2a0+modified, 2026-11-21T10:00:00Z) go1.26.8
//	wsgate devel (revision unknown) go1.26.8
//
// "devel" is a build of a working tree outside module mode's versioning
// (go build reports "(devel)"); the revision is unknown when the binary was
// built without VCS stamping (-buildvcs=false, or not from a checkout). A
// nil info (a binary without build information) gives "wsgate unknown".
func version(info *debug.BuildInfo) string {
	if info == nil {
		return "wsgate unknown"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, at string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "wsgate %s (revision ", v)
	if rev == "" {
		b.WriteString("unknown")
	} else {
		b.WriteString(rev[:min(len(rev), 12)])
		if modified {
			b.WriteString("+modified")
		}
		if at != "" {
			b.WriteString(", " + at)
		}
	}
	b.WriteString(")")
	if info.GoVersion != "" {
		b.WriteString(" " + info.GoVersion)
	}
	return b.String()
}
