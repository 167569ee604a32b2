package davfs

import (
	"strings"
	"unicode/utf8"
)

// Names and keys. A WebDAV name is any byte string a client can put in a
// URL path (after percent-decoding); an S3 key must be valid UTF-8, and the
// stores disagree about control characters and backslashes (SeaweedFS
// lists "a\\b" as "a/b"), while a listing's XML cannot carry U+FFFE,
// U+FFFF or most control characters. EncodeName maps every name to a key
// that is safe on every store, and DecodeName maps it back (docs/names.md):
//
//   - a byte that is not part of valid UTF-8, and every byte of a control
//     character (U+0000-U+001F, U+007F: CR, LF and tab among them), of a
//     backslash, of U+FFFE and of U+FFFF, becomes QuoteRune followed by two
//     uppercase hex digits ("\xFE" -> "‛FE", "\\" -> "‛5C"), as rclone's
//     own encoder (EncodeInvalidUtf8) quotes invalid bytes;
//   - QuoteRune itself is doubled ("‛" -> "‛‛"), as rclone quotes it;
//   - everything else, "/" included, stays as it is.
//
// DecodeName(EncodeName(n)) == n for every byte string n. A key that
// EncodeName cannot produce (written to S3 by another client: a lone
// QuoteRune, "‛41" for "A", a raw control character) is not canonical:
// no name maps to it, so listings leave it out (see CanonicalKeyName) and
// it is deleted with its folder.

// MaxSegmentBytes is the longest key segment (a name between slashes, in
// key form) every store takes: those that keep keys as file names
// (versitygw's POSIX back end, SeaweedFS, MinIO) take 255 bytes. AWS takes
// longer ones; the gateway refuses names beyond it, and listings leave out
// such keys, so that no name works on one store and fails on another.
const MaxSegmentBytes = 255

// QuoteRune starts an escape in a key: U+201B SINGLE HIGH-REVERSED-9
// QUOTATION MARK, the rune rclone quotes with.
const QuoteRune = '‛'

const quote = string(QuoteRune)

const upperHex = "0123456789ABCDEF"

// escapedRune reports whether a valid rune of a name is written as the
// escapes of its bytes.
func escapedRune(r rune) bool {
	return r < 0x20 || r == 0x7f || r == '\\' || r == 0xfffe || r == 0xffff
}

// EncodeName returns the key form of a name (or of a "/"-separated path of
// names).
func EncodeName(name string) string {
	if !needsEncoding(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 8)
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == QuoteRune:
			b.WriteString(quote + quote)
		case (r == utf8.RuneError && size == 1) || escapedRune(r):
			for _, c := range []byte(name[i : i+size]) {
				b.WriteString(quote)
				b.WriteByte(upperHex[c>>4])
				b.WriteByte(upperHex[c&0xf])
			}
		default:
			b.WriteString(name[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEncoding reports whether EncodeName changes name.
func needsEncoding(name string) bool {
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		if r == QuoteRune || (r == utf8.RuneError && size == 1) || escapedRune(r) {
			return true
		}
		i += size
	}
	return false
}

// DecodeName returns the name a key (or a "/"-separated path of keys)
// stands for: "‛‛" is QuoteRune, "‛" and two uppercase hex digits is that
// byte, and anything else (a malformed escape among it) stands for itself.
func DecodeName(key string) string {
	if !strings.Contains(key, quote) {
		return key
	}
	var b strings.Builder
	b.Grow(len(key))
	for {
		i := strings.Index(key, quote)
		if i < 0 {
			b.WriteString(key)
			return b.String()
		}
		b.WriteString(key[:i])
		rest := key[i+len(quote):]
		switch {
		case strings.HasPrefix(rest, quote):
			b.WriteString(quote)
			key = rest[len(quote):]
		case len(rest) >= 2 && isUpperHex(rest[0]) && isUpperHex(rest[1]):
			b.WriteByte(unhex(rest[0])<<4 | unhex(rest[1]))
			key = rest[2:]
		default:
			b.WriteString(quote)
			key = rest
		}
	}
}

// CanonicalKeyName reports whether a key (segment) is one EncodeName
// produces, so that its name maps back to it: only such keys are listed.
func CanonicalKeyName(key string) bool {
	if !strings.Contains(key, quote) {
		// Without escapes a key is its own name: canonical unless it holds
		// what EncodeName escapes.
		return !needsEncoding(key)
	}
	return EncodeName(DecodeName(key)) == key
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
