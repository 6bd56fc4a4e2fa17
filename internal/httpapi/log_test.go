package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/natstest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestKeyNeverLogged makes failing and succeeding calls at debug level,
// with right and wrong keys in both headers and in the body, and finds
// neither key in any log entry.
func TestKeyNeverLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	srv := natstest.Run(t, false)
	e := newEnv(t, srv, Config{Keys: []string{key1}, MaxBody: 512, Logger: zap.New(core)}, 0)
	wrong := "wrong-key-" + key2

	calls := []struct {
		hdr  http.Header
		body string
	}{
		{http.Header{"Authorization": {"Bearer " + wrong}}, publishBody},
		{http.Header{"Authorization": {"Bearer " + key1}}, publishBody},
		{http.Header{"X-Api-Key": {wrong}}, publishBody},
		{http.Header{"Authorization": {"Basic " + key1}}, publishBody},
		{http.Header{"Authorization": {"Bearer " + key1}}, `{"channel":"user.42"}`},                         // 400
		{http.Header{"Authorization": {"Bearer " + key1}}, `{"channel":"user.42","data":1,"durable":true}`}, // 503, no JetStream
		{http.Header{"Authorization": {"Bearer " + key1}}, strings.Repeat(" ", 600)},                        // 413
	}
	for _, c := range calls {
		c.hdr.Set("Content-Type", "application/json")
		e.do(t, "POST", "/api/v1/publish", c.hdr, c.body)
		e.do(t, "POST", "/api/v1/publish?key="+key1, c.hdr, c.body)
		e.do(t, "GET", "/api/v1/nope", c.hdr, "")
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the test proves nothing")
	}
	for _, entry := range logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, k := range []string{key1, key2} {
			if strings.Contains(line, k) {
				t.Errorf("log entry holds a key: %s", line)
			}
		}
	}
}
