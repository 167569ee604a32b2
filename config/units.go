package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ByteSize is a size written as a TOML integer (bytes) or a string with an
// optional binary unit: "16MiB", "512KiB", "1GiB", "1048576". It keeps the
// text as written; Bytes parses it, so that Validate can report a bad size
// together with every other problem.
type ByteSize string

// UnmarshalTOML accepts an integer or a string.
func (b *ByteSize) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*b = ByteSize(strconv.FormatInt(v, 10))
	case string:
		*b = ByteSize(v)
	default:
		return fmt.Errorf("a size must be an integer or a string such as 16MiB")
	}
	return nil
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1},
}

// Bytes parses the size. Units are KiB, MiB, GiB, TiB (powers of 1024) and
// B; a plain number is bytes.
func (b ByteSize) Bytes() (int64, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: use a number of bytes or a number with KiB, MiB or GiB, e.g. 16MiB")
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size too large")
	}
	return n * mult, nil
}

// Duration is a time.ParseDuration string such as "1h" or "90s", kept as
// written; Value parses it.
type Duration string

// Value parses the duration.
func (d Duration) Value() (time.Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(string(d)))
	if err != nil {
		return 0, fmt.Errorf("not a duration: use a number with a unit, e.g. 1h or 90s")
	}
	return v, nil
}

// sizeText writes n in the largest binary unit that divides it ("16MiB").
func sizeText(n int64) ByteSize {
	best := ""
	var bestMult int64 = 1
	for _, u := range byteUnits {
		if u.mult > bestMult && n != 0 && n%u.mult == 0 {
			best, bestMult = u.suffix, u.mult
		}
	}
	return ByteSize(strconv.FormatInt(n/bestMult, 10) + best)
}

// durationText writes d in the largest of h, m and s that divides it
// ("24h", "60s"), as Duration reads it.
func durationText(d time.Duration) Duration {
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}} {
		if d != 0 && d%u.unit == 0 {
			return Duration(strconv.FormatInt(int64(d/u.unit), 10) + u.name)
		}
	}
	return Duration(strconv.FormatInt(int64(d/time.Second), 10) + "s")
}
