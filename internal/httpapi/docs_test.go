package httpapi

import (
	"os"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
)

// TestDocsCoverAPI keeps docs/api.yaml in step with the code: every route
// and every error code is described there.
func TestDocsCoverAPI(t *testing.T) {
	b, err := os.ReadFile("../../docs/api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	h, err := New(Config{Publisher: &bus.Publisher{}, Control: &control.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	for path, rt := range h.(*handler).routes {
		if !strings.Contains(doc, "\n  "+path+":\n    "+strings.ToLower(rt.method)+":") {
			t.Errorf("docs/api.yaml does not describe %s %s", rt.method, path)
		}
	}
	for _, code := range []string{
		codeBadRequest, codeUnauthorized, codeInvalidKey, codeAPIDisabled, codeNotFound,
		codeMethodNotAllowed, codeBodyTooLarge, codeUnsupportedMediaType, codeInternal,
		codeNoGateways, codeNATSUnavailable, codeJetStreamUnavailable, codeNoStream,
		codeCanceled, codeTimeout,
	} {
		if !strings.Contains(doc, "`"+code+"`") {
			t.Errorf("docs/api.yaml does not describe error code %s", code)
		}
	}
}
