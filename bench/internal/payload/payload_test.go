package payload

import (
	"encoding/json"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTemplatePayload(t *testing.T) {
	body, err := Template([]byte(JSON1K))
	if err != nil {
		t.Fatal(err)
	}
	p := AppendTemplate(nil, 42, 1700000000123456789, body)
	if !json.Valid(p) || len(p) < 1000 || len(p) > 1100 {
		t.Errorf("json1k payload: %d bytes, valid %v", len(p), json.Valid(p))
	}
	if got := TemplateSize(body); got != len(p)-1 { // seq 42 has one digit more than the size's seq 1
		t.Errorf("TemplateSize %d, payload %d", got, len(p))
	}
	empty, err := Template([]byte(" { } "))
	if err != nil {
		t.Fatal(err)
	}
	if p := AppendTemplate(nil, 1, 2, empty); string(p) != `{"seq":1,"ts":2}` {
		t.Errorf("empty object: %s", p)
	}
	for _, bad := range []string{`[1,2]`, `null`, `"x"`, `{"seq":1}`, `{"a":1,"ts":2}`, `{"a":`} {
		if _, err := Template([]byte(bad)); err == nil {
			t.Errorf("%s accepted as a template", bad)
		}
	}
}

func TestPayloadTemplateAllocs(t *testing.T) {
	body, _ := Template([]byte(JSON1K))
	buf := AppendTemplate(nil, 1, 2, body)
	if n := testing.AllocsPerRun(100, func() { buf = AppendTemplate(buf[:0], 12, 1700000000123456789, body) }); n != 0 {
		t.Errorf("AppendTemplate allocates %v times, want 0", n)
	}
}
