package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/bench/internal/payload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"scenario", Config{Scenario: "nope"}, "unknown scenario"},
		{"wss", Config{Scenario: ScenarioConnect, URLs: []string{"wss://x/ws"}}, "only ws://"},
		{"topic conns", Config{Scenario: ScenarioTopic, Topics: 2, SubsPerTopic: 3, Conns: 7}, "differs"},
		{"short secret", Config{Scenario: ScenarioConnect, JWTSecret: "short"}, "32 bytes"},
		{"secret and key", Config{Scenario: ScenarioConnect, JWTSecret: strings.Repeat("s", 32), JWTKey: "k.pem"}, "give one"},
		{"kid without a key", Config{Scenario: ScenarioConnect, JWTKid: "k1"}, "--jwt-kid needs --jwt-key"},
		{"key missing", Config{Scenario: ScenarioConnect, JWTKey: "/nonexistent/k.pem"}, "--jwt-key"},
		{"sources", Config{Scenario: ScenarioConnect, SourceAddrs: "127.0.0.9-127.0.0.1"}, "bad range"},
		{"payload kind", Config{Scenario: ScenarioBroadcast, PayloadKind: "xml"}, "--payload-kind"},
		{"payload size of a template", Config{Scenario: ScenarioBroadcast, PayloadKind: PayloadJSON1K, PayloadSize: 200}, "applies to --payload-kind pad"},
		{"payload file missing", Config{Scenario: ScenarioBroadcast, PayloadFile: "/nonexistent/n.json"}, "--payload-file"},
		{"payload kind and file", Config{Scenario: ScenarioBroadcast, PayloadKind: PayloadJSON1K, PayloadFile: "n.json"}, "give one"},
		{"payload kind file without a file", Config{Scenario: ScenarioBroadcast, PayloadKind: PayloadFile}, "needs --payload-file"},
		{"deflate floor", Config{Scenario: ScenarioFloor, Deflate: true}, "--deflate"},
		{"inflate once without deflate", Config{Scenario: ScenarioBroadcast, InflateOnce: true}, "needs --deflate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Normalize()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
	c := Config{Scenario: ScenarioBroadcast, Conns: 60000}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Workers != 4 || c.SourceAddrs != "127.0.0.1-127.0.0.3" {
		t.Errorf("60000 conns: workers %d sources %q", c.Workers, c.SourceAddrs)
	}
	for _, tc := range []struct {
		name, file string
		want       string
	}{
		{"pretty", "{\n  \"title\": \"hi\",\n  \"n\": [1, 2]\n}\n", `{"seq":1,"ts":1700000000000000000,"title":"hi","n":[1,2]}`},
		{"seq inside", `{"a":{"seq":1}}`, `{"seq":1,"ts":1700000000000000000,"a":{"seq":1}}`},
	} {
		t.Run("payload file "+tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "n.json")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			c := Config{Scenario: ScenarioBroadcast, PayloadFile: path}
			if err := c.Normalize(); err != nil {
				t.Fatal(err)
			}
			got := payload.AppendTemplate(nil, 1, 1700000000000000000, c.Template())
			if c.PayloadKind != PayloadFile || string(got) != tc.want || c.PayloadSize != len(tc.want) {
				t.Errorf("kind %q size %d payload %s; want %s", c.PayloadKind, c.PayloadSize, got, tc.want)
			}
		})
	}
	ips, err := ParseSources("127.0.0.1-127.0.0.50,10.0.0.7")
	if err != nil || len(ips) != 51 || ips[49].String() != "127.0.0.50" {
		t.Errorf("sources %v %v", ips, err)
	}
}
