package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// envName is the environment variable of a flag: "nats-url" → WSGATE_NATS_URL.
func envName(flagName string) string {
	return "WSGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses args into fs (whose Usage, when nil, becomes the command
// line and its flags), then fills every flag not given on the command
// line from its WSGATE_* environment variable. The command takes at most
// nargs positional arguments; more are a usage error.
//
// It then holds the numeric flags (int, float, duration) to wsgate's one
// convention: 0 means none (no limit, no delay, off), and a negative value
// is refused. The flags named in positive have no "none" and refuse 0 too.
func parse(fs *flag.FlagSet, args []string, nargs int, positive ...string) error {
	if fs.Usage == nil {
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "usage: %s\n\n", fs.Name())
			printFlags(fs)
		}
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err} // the flag package has printed the usage
	}
	if fs.NArg() > nargs {
		fs.Usage()
		return usagef("unexpected argument %q", fs.Arg(nargs))
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fromEnv := make(map[string]bool)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || set[f.Name] || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usagef("%s=%q: %w", envName(f.Name), v, e)
		}
		fromEnv[f.Name] = true
	})
	if err != nil {
		return err
	}
	return checkNumbers(fs, fromEnv, positive)
}

// printFlags writes the flags of fs and how to set them from the
// environment.
func printFlags(fs *flag.FlagSet) {
	fmt.Fprintf(fs.Output(), "Every flag can also be set with WSGATE_<FLAG> in the environment (--nats-url is WSGATE_NATS_URL).\n\n")
	fs.PrintDefaults()
}

// checkNumbers refuses negative numeric flags, and 0 for those in
// positive. fromEnv names the flags set from the environment, which the
// message names instead.
func checkNumbers(fs *flag.FlagSet, fromEnv map[string]bool, positive []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || err != nil {
			return
		}
		var sign int
		switch v := g.Get().(type) {
		case int:
			sign = cmp.Compare(v, 0)
		case float64:
			sign = cmp.Compare(v, 0) // NaN compares below 0: refused
		case time.Duration:
			sign = cmp.Compare(v, 0)
		default:
			return
		}
		name := "--" + f.Name + " "
		if fromEnv[f.Name] {
			name = envName(f.Name) + "="
		}
		switch {
		case sign < 0:
			err = usagef("%s%s: negative values are refused; 0 means none (see --help)", name, f.Value)
		case sign == 0 && slices.Contains(positive, f.Name):
			err = usagef("%s%s: must be above 0, as there is no \"none\" for it (leave it out for the default, %s)", name, f.Value, f.DefValue)
		}
	})
	return err
}

// given reports whether flag name was set, on the command line or from the
// environment.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
