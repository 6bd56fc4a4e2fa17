//go:build linux

package main

import (
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wstest"
)

// testSecret is a JWT secret the gateway accepts: 32 bytes.
const testSecret = "0123456789abcdef0123456789abcdef"

// usageCase is a command line the binary must answer with an exit status
// and a message on stderr, without doing anything else.
type usageCase struct {
	name string
	args []string
	env  []string
	code int
	want []string // substrings of stderr
}

func runUsageCases(t *testing.T, bin string, cases []usageCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runBinary(t, bin, tc.env, tc.args...)
			if r.code != tc.code {
				t.Errorf("wsgate %s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tc.args, " "), r.code, tc.code, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("wsgate %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), w, r.stderr)
				}
			}
		})
	}
}

// A misspelled command, or an argument the command does not take, is a
// mistake to point out (exit 2, with the usage), not something to ignore:
// before, `wsgate publsh` started a gateway.
func TestCommandLine(t *testing.T) {
	bin := buildBinary(t)
	// Were the binary to start a gateway anyway, these keep it off shared
	// ports.
	quiet := []string{"--auth=none", "--listen", "127.0.0.1:0", "--admin", "", "--embedded-nats-listen", "127.0.0.1:0"}
	runUsageCases(t, bin, []usageCase{
		{name: "misspelled command", args: []string{"publsh", "--user", "42", "x"}, code: 2,
			want: []string{`unknown command "publsh"; did you mean publish?`, "wsgate publish [flags] PAYLOAD"}},
		{name: "unknown command", args: []string{"serve"}, code: 2,
			want: []string{`unknown command "serve"`, "usage:"}},
		{name: "gateway argument", args: append(quiet, "stray"), code: 2,
			want: []string{`unexpected argument "stray"`, "usage:"}},
		{name: "bool flag with a value", args: append(quiet, "--pprof", "true"), code: 2,
			want: []string{`unexpected argument "true"`}},
		{name: "unknown flag", args: []string{"--no-such-flag"}, code: 2,
			want: []string{"flag provided but not defined: -no-such-flag"}},
		{name: "publish arguments", args: []string{"publish", "--user", "42", "a", "b"}, code: 2,
			want: []string{`unexpected argument "b"`}},
		{name: "publish without payload", args: []string{"publish", "--user", "42"}, code: 2,
			want: []string{"one PAYLOAD"}},
		{name: "publish to two targets", args: []string{"publish", "--user", "42", "--broadcast", "x"}, code: 2,
			want: []string{"exactly one of --user, --topic, --broadcast"}},
		{name: "token argument", args: []string{"token", "--jwt-secret", testSecret, "--user", "42", "extra"}, code: 2,
			want: []string{`unexpected argument "extra"`}},
		{name: "version argument", args: []string{"version", "extra"}, code: 2,
			want: []string{`unexpected argument "extra"`}},
		{name: "help", args: []string{"--help"}, code: 0,
			want: []string{"wsgate publish [flags] PAYLOAD", "-listen string"}},
	})
	if r := runBinary(t, bin, nil, "help"); r.code != 0 || !strings.Contains(r.stdout, "wsgate token [flags]") {
		t.Errorf("wsgate help: status %d, stdout:\n%s", r.code, r.stdout)
	}
}

// `wsgate version` and `wsgate --version` print the module version and the
// revision the binary was built from, as the Go toolchain recorded them.
func TestVersion(t *testing.T) {
	bin := t.TempDir() + "/wsgate"
	// GOFLAGS may turn VCS stamping off (-buildvcs=false); this test wants it.
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Skipf("cannot build with VCS information here: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	mod := regexp.MustCompile(`(?m)^\tmod\t\S+\t(\S+)`).FindSubmatch(out)
	rev := regexp.MustCompile(`(?m)^\tbuild\tvcs\.revision=(\S+)`).FindSubmatch(out)
	if mod == nil {
		t.Fatalf("go version -m shows no module version:\n%s", out)
	}
	if rev == nil {
		t.Skipf("built without VCS information (not in a git checkout?); TestVersionLine covers that case")
	}
	for _, arg := range []string{"version", "--version"} {
		r := runBinary(t, bin, nil, arg)
		if r.code != 0 {
			t.Fatalf("wsgate %s: status %d\n%s", arg, r.code, r.stderr)
		}
		line := strings.TrimSpace(r.stdout)
		if want := "wsgate " + string(mod[1]) + " (revision " + string(rev[1][:12]); !strings.HasPrefix(line, want) {
			t.Errorf("wsgate %s = %q, want it to start with %q", arg, line, want)
		}
	}
}

func TestVersionLine(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "wsgate unknown"},
		{"devel without vcs", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"wsgate devel (revision unknown) go1.26.8"},
		{"tagged", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
			Settings: vcs("vcs.revision", "4b967ebb96aeacc64f1d9aed373b91c9fcb3305b", "vcs.time", "2026-12-02T05:22:17Z", "vcs.modified", "false")},
			"wsgate v1.2.0 (revision 4b967ebb96ae, 2026-12-02T05:22:17Z) go1.26.8"},
		{"modified", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", "4b967eb", "vcs.modified", "true")},
			"wsgate devel (revision 4b967eb+modified)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := version(tc.info); got != tc.want {
				t.Errorf("version = %q, want %q", got, tc.want)
			}
		})
	}
}

// `wsgate token` refuses what the gateway would refuse, in the gateway's
// words, and a token it signs is one a JWT gateway accepts.
func TestToken(t *testing.T) {
	bin := buildBinary(t)
	runUsageCases(t, bin, []usageCase{
		{name: "short secret", args: []string{"token", "--jwt-secret", "short", "--user", "42"}, code: 2,
			want: []string{"the HS256 secret has 5 bytes; use at least 32"}},
		{name: "short secret from the environment", args: []string{"token", "--user", "42"}, env: []string{"WSGATE_JWT_SECRET=0123456789"}, code: 2,
			want: []string{"the HS256 secret has 10 bytes; use at least 32"}},
		{name: "dotted user", args: []string{"token", "--jwt-secret", testSecret, "--user", "4.2"}, code: 2,
			want: []string{`--user "4.2": sub must be a token of [A-Za-z0-9_-], at most 123 bytes`}},
		{name: "long user", args: []string{"token", "--jwt-secret", testSecret, "--user", strings.Repeat("u", 124)}, code: 2,
			want: []string{"at most 123 bytes"}},
		{name: "malformed pattern", args: []string{"token", "--jwt-secret", testSecret, "--user", "42", "--channels", "topic.sports,topic.new*"}, code: 2,
			want: []string{`--channels "topic.new*": a pattern is dot-separated tokens`}},
		{name: "not a topic", args: []string{"token", "--jwt-secret", testSecret, "--user", "42", "--channels", "sports"}, code: 2,
			want: []string{"only topic.<name> channels can be subscribed; did you mean topic.sports?"}},
		{name: "no ttl", args: []string{"token", "--jwt-secret", testSecret, "--user", "42", "--ttl", "0"}, code: 2,
			want: []string{"--ttl 0s: must be above 0"}},
	})

	r := runBinary(t, bin, []string{"WSGATE_JWT_SECRET=" + testSecret}, "token", "--user", "42", "--channels", "topic.news.*,topic.>")
	if r.code != 0 {
		t.Fatalf("wsgate token: status %d\n%s", r.code, r.stderr)
	}
	token := strings.TrimSpace(r.stdout)
	g := startGateway(t, bin, "--auth=jwt", "--jwt-secret", testSecret, "--embedded-nats-listen", "127.0.0.1:0")
	gw := g.waitField(t, "gateway listening", "addr")
	c, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+gw+"/ws?token="+token, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("the gateway refused the token wsgate token signed: %v", err)
	}
	defer c.Close()
	c.Send(t, map[string]any{"op": "subscribe", "channel": "topic.sports", "ref": 1})
	if m, err := c.Read(time.Now().Add(5 * time.Second)); err != nil || m["type"] != "subscribed" {
		t.Fatalf("subscribe with the token's topic.> pattern: %v %v", m, err)
	}
}

// The channel's kind goes in the flag, not in the value: --topic
// topic.sports would publish to notify.topic.topic.sports, which nobody
// reads. It is refused with the right command line before anything is sent.
func TestPublishNames(t *testing.T) {
	bin := buildBinary(t)
	nowhere := []string{"WSGATE_NATS_URL=nats://127.0.0.1:1"} // a dial would fail with status 1
	runUsageCases(t, bin, []usageCase{
		{name: "topic prefix", args: []string{"publish", "--topic", "topic.sports", "x"}, env: nowhere, code: 2,
			want: []string{`--topic takes the topic name without "topic.": --topic sports`}},
		{name: "dotted topic prefix", args: []string{"publish", "--topic", "topic.news.eu", "x"}, env: nowhere, code: 2,
			want: []string{"--topic news.eu"}},
		{name: "user prefix", args: []string{"publish", "--user", "user.42", "x"}, env: nowhere, code: 2,
			want: []string{`--user takes the user id without "user.": --user 42`}},
		{name: "invalid user", args: []string{"publish", "--user", "4.2", "x"}, env: []string{"WSGATE_NATS_URL=" + startNATS(t)}, code: 2,
			want: []string{`user id "4.2"`}},
		{name: "no timeout", args: []string{"publish", "--user", "42", "--timeout", "0", "x"}, env: nowhere, code: 2,
			want: []string{"--timeout 0s: must be above 0"}},
	})
}

// One convention for the numeric flags: 0 means none, negative is refused,
// and 0 is refused where none makes no sense; the environment follows it.
func TestNumericFlags(t *testing.T) {
	bin := buildBinary(t)
	quiet := []string{"--auth=none", "--listen", "127.0.0.1:0", "--admin", "", "--embedded-nats-listen", "127.0.0.1:0"}
	runUsageCases(t, bin, []usageCase{
		{name: "negative duration", args: append(quiet, "--drain-delay", "-1s"), code: 2,
			want: []string{"--drain-delay -1s: negative values are refused; 0 means none"}},
		{name: "negative int", args: append(quiet, "--gogc", "-1"), code: 2,
			want: []string{"--gogc -1: negative values are refused"}},
		{name: "negative float", args: append(quiet, "--max-client-rate", "-1"), code: 2,
			want: []string{"--max-client-rate -1: negative"}},
		{name: "negative from the environment", args: quiet, env: []string{"WSGATE_PING_INTERVAL=-5s"}, code: 2,
			want: []string{"WSGATE_PING_INTERVAL=-5s: negative"}},
		{name: "zero without none", args: append(quiet, "--pool-size", "0"), code: 2,
			want: []string{"--pool-size 0: must be above 0", "the default, 256"}},
		{name: "zero without none from the environment", args: quiet, env: []string{"WSGATE_WRITE_TIMEOUT=0"}, code: 2,
			want: []string{"WSGATE_WRITE_TIMEOUT=0s: must be above 0"}},
		{name: "zero ratio", args: append(quiet, "--ready-conns-ratio", "0"), code: 2,
			want: []string{"--ready-conns-ratio 0: must be above 0"}},
		{name: "unknown storage", args: append(quiet, "--durable-storage", "disk"), code: 2,
			want: []string{"--durable-storage must be file or memory, not \"disk\""}},
		{name: "GC off without a memory limit", args: append(quiet, "--gogc", "0"), env: []string{"GOMEMLIMIT="}, code: 1,
			want: []string{"--gogc 0 turns the garbage collector off; without GOMEMLIMIT"}},
	})

	// --ping-interval 0 turns pings off, as --drain-delay 0 means no delay:
	// the welcome says 0.
	t.Setenv("GOMEMLIMIT", "1GiB") // --gogc 0 needs a memory limit
	g := startGateway(t, bin, "--embedded-nats-listen", "127.0.0.1:0", "--ping-interval", "0", "--idle-timeout", "0", "--gogc", "0")
	gw := g.waitField(t, "gateway listening", "addr")
	c, err := wstest.Dial(t.Context(), ws.Dialer{}, "ws://"+gw+"/ws?user=42")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Welcome(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := w["ping_interval"]; got != 0.0 {
		t.Errorf("--ping-interval 0: the welcome has ping_interval %v, want 0 (off)", got)
	}
}
