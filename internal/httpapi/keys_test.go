package httpapi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "# service keys\n\n  "+key2+"  \n# old: rotate out\n"+key1+"\n")
	empty := write("empty", "# nothing yet\n\n")
	short := write("short", key1+"\nsecret-short\n")

	tests := []struct {
		name        string
		value, path string
		want        []string
		err         error
	}{
		{name: "neither"},
		{name: "value, comma", value: key1 + ", " + key2, want: []string{key1, key2}},
		{name: "value, newline", value: key1 + "\n" + key2 + "\n", want: []string{key1, key2}},
		{name: "file", path: good, want: []string{key2, key1}},
		{name: "both, deduplicated", value: key1, path: good, want: []string{key1, key2}},
		{name: "blank value", value: " , ", err: ErrNoKeys},
		{name: "empty file", path: empty, err: ErrNoKeys},
		{name: "short key in value", value: key1 + ",tooshort", err: ErrInvalidKey},
		{name: "short key in file", path: short, err: ErrInvalidKey},
		{name: "control byte", value: key1 + "\x01", err: ErrInvalidKey},
		{name: "missing file", path: filepath.Join(dir, "missing"), err: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadKeys(tt.value, tt.path)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("keys = %q, want %q", got, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), "tooshort") || strings.Contains(err.Error(), "secret-short")) {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
}

func TestKeyringMatch(t *testing.T) {
	kr, err := newKeyring([]string{key1, key2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key  string
		want bool
	}{
		{key1, true}, {key2, true}, {"", false}, {key1[:len(key1)-1], false}, {key1 + key1, false}, {strings.ToUpper(key1), false},
	} {
		if got := kr.match(tt.key); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
	if (keyring{}).match(key1) {
		t.Error("an empty keyring matched")
	}
}
