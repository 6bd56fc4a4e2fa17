//go:build integration && linux

package main

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// In development mode (--auth=none, which trusts anyone's ?user=) the
// gateway listens on loopback unless --listen or WSGATE_LISTEN says
// otherwise, and the admin listener, which has no authentication, is on
// loopback in every mode. The default ports are the real ones, so each
// gateway runs in a network namespace of its own (unshare -rn), where they
// are free; the test reads the addresses from the log.
func TestLoopbackDefaults(t *testing.T) {
	unshare, ip := findTool("unshare"), findTool("ip")
	if unshare == "" || ip == "" {
		t.Skip("needs unshare and ip (util-linux, iproute2)")
	}
	if out, err := exec.Command(unshare, "-rn", ip, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Skipf("no unprivileged network namespaces here: %v\n%s", err, out)
	}
	bin := buildBinary(t)
	for _, tc := range []struct {
		name        string
		env         []string
		args        []string
		listen      string
		admin       string
		try         string // "" when the gateway must not print one
		embeddedURL bool
	}{
		{name: "development", args: []string{"--auth=none"}, listen: "127.0.0.1:8080", admin: "127.0.0.1:9090",
			try: `try: http://127.0.0.1:9090/demo/ · ws://127.0.0.1:8080/ws?user=42 · admin http://127.0.0.1:9090 · wsgate publish --user 42 '{"text":"hi"}'`},
		{name: "development, listen from the environment", env: []string{"WSGATE_LISTEN=:8080"}, args: []string{"--auth=none", "--subject-prefix", "dev"},
			listen: "[::]:8080", admin: "127.0.0.1:9090",
			try: `try: http://127.0.0.1:9090/demo/ · ws://localhost:8080/ws?user=42 · admin http://127.0.0.1:9090 · wsgate publish --subject-prefix dev --user 42 '{"text":"hi"}'`},
		{name: "development, listen given, no admin", args: []string{"--auth=none", "--listen", ":8080", "--admin", "", "--embedded-nats-listen", "127.0.0.1:4223"},
			listen: "[::]:8080",
			try:    `try: ws://localhost:8080/ws?user=42 · wsgate publish --nats-url nats://127.0.0.1:4223 --user 42 '{"text":"hi"}'`},
		{name: "jwt", env: []string{"WSGATE_JWT_SECRET=" + testSecret}, listen: "[::]:8080", admin: "127.0.0.1:9090"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-rn", "sh", "-c", ip + ` link set lo up && exec "$0" "$@"`, "env"}, tc.env...)
			args = append(append(args, bin, "--log-format", "json", "--drain-delay", "0", "--drain-timeout", "0", "--durable=false"), tc.args...)
			g := startProc(t, unshare, args...)
			if got := g.waitField(t, "gateway listening", "addr"); got != tc.listen {
				t.Errorf("WebSocket listener on %s, want %s", got, tc.listen)
			}
			if tc.admin != "" {
				if got := g.waitField(t, "admin listening", "addr"); got != tc.admin {
					t.Errorf("admin listener on %s, want %s", got, tc.admin)
				}
			}
			if tc.try == "" {
				// Once the process has exited its whole log is in.
				g.cmd.Process.Signal(syscall.SIGTERM)
				if err := g.wait(time.Now().Add(10 * time.Second)); err != nil {
					t.Fatal(err)
				}
				if g.log.find("try:") != nil {
					t.Error("a gateway with authentication printed a try: line")
				}
				return
			}
			if got, _ := g.waitLog(t, "try:")["msg"].(string); got != tc.try {
				t.Errorf("got  %s\nwant %s", got, tc.try)
			}
		})
	}
}
