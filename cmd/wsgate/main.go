// Command wsgate is the WebSocket notification gateway.
//
//	wsgate [flags]                      run the gateway (see -help)
//	wsgate publish [flags] PAYLOAD      publish a notification through NATS
//	wsgate stream (apply | info) [flags]  create, update or show the stream of durable notifications
//	wsgate token [flags]                sign an HS256 token for testing JWT mode
//	wsgate presence|disconnect|subscribe|unsubscribe|stats [flags]
//	                                    ask or tell every gateway, through NATS
//	wsgate upstream [flags]             print what clients send up; answer requests
//	wsgate version                      print the version and VCS revision
//
// Every flag has an environment equivalent: --nats-url is WSGATE_NATS_URL.
// A flag given on the command line wins over the environment.
//
// wsgate exits 2 when it was called wrongly (an unknown command or flag, an
// argument it does not take, a value it refuses) and 1 when it failed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// commands are the subcommands; anything else that does not start with "-"
// is a mistake, not the gateway's first argument.
var commands = map[string]func(args []string) error{
	"publish":     publish,
	"stream":      stream,
	"token":       signToken,
	"version":     printVersion,
	"presence":    presence,
	"disconnect":  disconnect,
	"subscribe":   subscribe,
	"unsubscribe": unsubscribe,
	"stats":       stats,
	"upstream":    upstream,
	"help":        func([]string) error { printUsage(os.Stdout); return nil },
}

func main() {
	err := command(os.Args[1:])
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "wsgate:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "wsgate:", err)
		os.Exit(1)
	}
}

// command runs the subcommand args name, or the gateway.
func command(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-" {
		if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
			return printVersion(args[1:])
		}
		return serve(args)
	}
	if run, ok := commands[args[0]]; ok {
		return run(args[1:])
	}
	printUsage(os.Stderr)
	msg := fmt.Sprintf("unknown command %q", args[0])
	if near := closest(args[0]); near != "" {
		msg += fmt.Sprintf("; did you mean %s?", near)
	}
	return usageError{errors.New(msg)}
}

// printUsage writes the list of commands.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  wsgate [flags]                    run the gateway (wsgate --help lists its flags)
  wsgate publish [flags] PAYLOAD    publish a notification through NATS (--durable: stored first)
  wsgate stream (apply | info)      create or update, or show, the stream of durable notifications
  wsgate token [flags]              sign an HS256 token for trying JWT mode
  wsgate version                    print the version and VCS revision (also --version)
  wsgate help                       print this list

control plane, through NATS to every gateway (COMMAND --help lists a command's flags):
  wsgate presence [--user ID | --topic T]    a user's sockets, a topic's subscribers, or each gateway's totals
  wsgate disconnect (--user ID | --conn ID) --reason logout|revoked|reconnect
                                             close sockets; revoked also refuses the user's tokens
  wsgate subscribe --user ID --topic T       add topic T to every socket of the user
  wsgate unsubscribe --user ID --topic T     remove it
  wsgate stats                               each gateway's connections, users, topics, uptime, version
  wsgate upstream [--channel P] [--echo]     print what clients send up; answer their requests

`)
}

// usageError is a mistake in how wsgate was called; main exits 2 for it, as
// the flag package does for the mistakes it finds.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// closest returns the command within two typos of name, or "".
func closest(name string) string {
	best, bestDist := "", 3
	for c := range commands {
		if d := editDistance(name, c); d < bestDist || d == bestDist && c < best {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
