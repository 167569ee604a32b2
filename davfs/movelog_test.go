package davfs

import (
	"testing"
	"time"
)

func TestMoveLogKnowsOnlyTheCopyOfAHalfDoneMove(t *testing.T) {
	l := NewMoveLog(time.Hour, 4)
	l.halfDone("r/a", `"s"`, "r/b", `"c"`)
	for _, c := range []struct {
		name                      string
		src, srcETag, dst, dstTag string
		want                      bool
	}{
		{"the same move with the copy still there is known", "r/a", `"s"`, "r/b", `"c"`, true},
		{"a source changed since is not", "r/a", `"s2"`, "r/b", `"c"`, false},
		{"a destination replaced since is not", "r/a", `"s"`, "r/b", `"other"`, false},
		{"another destination is not", "r/a", `"s"`, "r/x", `"c"`, false},
		{"another source is not", "r/z", `"s"`, "r/b", `"c"`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := l.isCopy(c.src, c.srcETag, c.dst, c.dstTag); got != c.want {
				t.Fatalf("isCopy = %v, want %v", got, c.want)
			}
		})
	}
	t.Run("a completed move is forgotten", func(t *testing.T) {
		l.forget("r/a")
		if l.isCopy("r/a", `"s"`, "r/b", `"c"`) {
			t.Fatal("still known")
		}
	})
	t.Run("an expired record is not used and the log stays bounded", func(t *testing.T) {
		short := NewMoveLog(time.Millisecond, 4)
		short.halfDone("r/a", `"s"`, "r/b", `"c"`)
		time.Sleep(5 * time.Millisecond)
		if short.isCopy("r/a", `"s"`, "r/b", `"c"`) {
			t.Fatal("an expired record was used")
		}
		for i := range 100 {
			short.halfDone("r/"+string(rune('a'+i%26))+string(rune('a'+i/26)), `"s"`, "r/b", `"c"`)
		}
		if n := len(short.items); n > 4 {
			t.Fatalf("%d records kept, want at most 4", n)
		}
	})
	t.Run("a nil log knows nothing", func(t *testing.T) {
		var n *MoveLog
		n.halfDone("r/a", `"s"`, "r/b", `"c"`)
		if n.isCopy("r/a", `"s"`, "r/b", `"c"`) {
			t.Fatal("a nil log knew a move")
		}
	})
}
