package handlers

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

// Watermill's lines go through with their levels mapped, and those below
// the logger's level are dropped, also after With.
func TestWatermillLoggerGatesByMappedLevel(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  []string
		drop  []string
	}{
		{slog.LevelDebug, []string{"info-line", "debug-line", "error-line"}, []string{"trace-line"}},
		{slog.LevelInfo, []string{"error-line"}, []string{"info-line", "debug-line", "trace-line"}},
		{watermill.LevelTrace, []string{"trace-line", "info-line", "error-line"}, nil},
	} {
		var buf bytes.Buffer
		l := watermillLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level})),
			map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}).With(watermill.LogFields{"lane": 3})
		l.Trace("trace-line", watermill.LogFields{"k": 1})
		l.Debug("debug-line", nil)
		l.Info("info-line", nil)
		l.Error("error-line", nil, nil)
		out := buf.String()
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("level %v: %q not written:\n%s", tc.level, w, out)
			}
		}
		for _, d := range tc.drop {
			if strings.Contains(out, d) {
				t.Errorf("level %v: %q written:\n%s", tc.level, d, out)
			}
		}
		if !strings.Contains(out, "lane=3") {
			t.Errorf("level %v: With's fields lost:\n%s", tc.level, out)
		}
		if tc.level == slog.LevelDebug && !strings.Contains(out, `level=DEBUG msg=info-line`) {
			t.Errorf("info not mapped to debug:\n%s", out)
		}
	}
}
