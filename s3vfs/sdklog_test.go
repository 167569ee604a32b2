package s3vfs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
)

func TestSDKLogLinesGoToTheStoreLogger(t *testing.T) {
	var buf bytes.Buffer
	l := sdkLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Logf(logging.Warn, "failed to discard remaining HTTP response body, %s", "this may affect connection reuse")
	l.Logf(logging.Debug, "retrying %d", 2)
	out := buf.String()
	if !strings.Contains(out, `level=WARN msg="s3 client: failed to discard remaining HTTP response body, this may affect connection reuse"`) ||
		!strings.Contains(out, `level=DEBUG msg="s3 client: retrying 2"`) {
		t.Fatalf("log:\n%s", out)
	}
	sdkLogger{}.Logf(logging.Warn, "no logger: %s", "dropped") // never panics
}
