package davfs

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNamesEncodeToTheDocumentedKeys(t *testing.T) {
	cases := []struct{ name, key string }{
		{"plain name.txt", "plain name.txt"},
		{" lead and trail. ", " lead and trail. "},
		{"?#%&+;'\"", "?#%&+;'\""},
		{"ｆｕｌｌｗｉｄｔｈ", "ｆｕｌｌｗｉｄｔｈ"},
		{"a/b/c", "a/b/c"},
		{"\xfe", "‛FE"},
		{"a\xffb", "a‛FFb"},
		{"\xc3", "‛C3"},
		{"cr\rlf\ntab\t", "cr‛0Dlf‛0Atab‛09"},
		{"nul\x00del\x7f", "nul‛00del‛7F"},
		{`back\slash`, "back‛5Cslash"},
		{"non\uFFFEchar\uFFFF", "non‛EF‛BF‛BEchar‛EF‛BF‛BF"},
		{"quote‛rune", "quote‛‛rune"},
		{"‛FE", "‛‛FE"},
		{"\uFFFD replacement", "\uFFFD replacement"},
	}
	for _, c := range cases {
		if got := EncodeName(c.name); got != c.key {
			t.Errorf("EncodeName(%q) = %q, want %q", c.name, got, c.key)
		}
		if got := DecodeName(c.key); got != c.name {
			t.Errorf("DecodeName(%q) = %q, want %q", c.key, got, c.name)
		}
		if !CanonicalKeyName(c.key) {
			t.Errorf("CanonicalKeyName(%q) = false for the key of %q", c.key, c.name)
		}
	}
}

func TestKeysNoNameEncodesToAreNotCanonical(t *testing.T) {
	// Keys another S3 client may write: each decodes to some name, but that
	// name's key is another one, so listings leave them out.
	for _, key := range []string{"lone‛", "‛quote", "needless‛41", "lower‛fe", "short‛F", "raw\ncontrol", `raw\backslash`, "bad\xffutf8", "nul\x00"} {
		if CanonicalKeyName(key) {
			t.Errorf("CanonicalKeyName(%q) = true, but EncodeName(DecodeName(%q)) = %q", key, key, EncodeName(DecodeName(key)))
		}
	}
}

// FuzzNameCodec: every byte string encodes to a key that is valid UTF-8
// with no control character, backslash, U+FFFE or U+FFFF, that decodes back
// to the same bytes and is canonical; a key's name encodes back to that key
// exactly when the key is canonical.
func FuzzNameCodec(f *testing.F) {
	for _, s := range []string{"", "a", "\xfe", "‛", "‛‛", "‛FE", "a\\b", "\r\n\t", "\uFFFE", "日本語", "‛4", "‛41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		key := EncodeName(name)
		if !utf8.ValidString(key) {
			t.Fatalf("EncodeName(%q) = %q is not UTF-8", name, key)
		}
		for _, r := range key {
			if escapedRune(r) {
				t.Fatalf("EncodeName(%q) = %q holds %U", name, key, r)
			}
		}
		if got := DecodeName(key); got != name {
			t.Fatalf("DecodeName(EncodeName(%q)) = %q", name, got)
		}
		if !CanonicalKeyName(key) {
			t.Fatalf("EncodeName(%q) = %q is not canonical", name, key)
		}
		if strings.Count(key, "/") != strings.Count(name, "/") {
			t.Fatalf("EncodeName(%q) = %q changed the path's segments", name, key)
		}
		// Read as a key, name is canonical exactly when its name's key is
		// itself.
		if CanonicalKeyName(name) != (EncodeName(DecodeName(name)) == name) {
			t.Fatalf("CanonicalKeyName(%q) = %v, but EncodeName(DecodeName(%q)) = %q", name, CanonicalKeyName(name), name, EncodeName(DecodeName(name)))
		}
	})
}
