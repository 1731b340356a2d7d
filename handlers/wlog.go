package handlers

import (
	"context"
	"errors"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// watermillLogger is Watermill's slog adapter with its levels mapped, that
// drops a line below what the logger writes before Watermill turns its
// fields into attributes: the router logs every message at trace level,
// and the adapter would build those attributes only for slog to discard
// them (about 1% of the processor's CPU).
func watermillLogger(l *slog.Logger, mapping map[slog.Level]slog.Level) watermill.LoggerAdapter {
	return gatedLogger{LoggerAdapter: watermill.NewSlogLoggerWithLevelMapping(l, mapping), log: l, mapping: mapping}
}

type gatedLogger struct {
	watermill.LoggerAdapter
	log     *slog.Logger
	mapping map[slog.Level]slog.Level
}

func (g gatedLogger) enabled(level slog.Level) bool {
	if m, ok := g.mapping[level]; ok {
		level = m
	}
	return g.log.Enabled(context.Background(), level)
}

func (g gatedLogger) Info(msg string, fields watermill.LogFields) {
	if g.enabled(slog.LevelInfo) {
		g.LoggerAdapter.Info(msg, fields)
	}
}

func (g gatedLogger) Debug(msg string, fields watermill.LogFields) {
	if g.enabled(slog.LevelDebug) {
		g.LoggerAdapter.Debug(msg, fields)
	}
}

func (g gatedLogger) Trace(msg string, fields watermill.LogFields) {
	if g.enabled(watermill.LevelTrace) {
		g.LoggerAdapter.Trace(msg, fields)
	}
}

// Error logs an error, but at debug level when the processor reports it
// itself (errReported): once for all triggers, not once per attempt.
func (g gatedLogger) Error(msg string, err error, fields watermill.LogFields) {
	if errors.Is(err, errReported) {
		g.Debug(msg+": "+err.Error(), fields)
		return
	}
	g.LoggerAdapter.Error(msg, err, fields)
}

func (g gatedLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return gatedLogger{LoggerAdapter: g.LoggerAdapter.With(fields), log: g.log, mapping: g.mapping}
}
