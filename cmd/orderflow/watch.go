package main

import (
	"context"
	"os"
	"slices"
	"time"
)

// watchedFiles are files serve reads again when any of them changes, and
// how it reads them.
type watchedFiles struct {
	name   string // for the log
	paths  []string
	reload func() error
	last   []os.FileInfo
}

// stat is what the files look like now; a file that cannot be read is nil.
func (w *watchedFiles) stat() []os.FileInfo {
	fis := make([]os.FileInfo, len(w.paths))
	for i, p := range w.paths {
		fis[i], _ = os.Stat(p)
	}
	return fis
}

// changed reports whether a file was written, resized, replaced (a new
// file renamed over it), removed or put back since last time.
func changed(was, now []os.FileInfo) bool {
	return !slices.EqualFunc(was, now, func(a, b os.FileInfo) bool {
		if a == nil || b == nil {
			return a == b
		}
		return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
	})
}

// watchFiles checks the --api-keys file and the --tls-cert and --tls-key
// files every interval, and reloads what changed, so that a key revoked
// or a certificate renewed takes effect without a signal. It looks at the
// files as they were before Run's first reading of them, so a change
// made in between is not missed. A file caught half written is read again
// once it changes again; until then what is in use stays.
func (a *App) watchFiles(ctx context.Context, interval time.Duration, files []*watchedFiles) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, w := range files {
			now := w.stat()
			if !changed(w.last, now) {
				continue
			}
			w.last = now
			if slices.Contains(now, nil) {
				a.Logger.Warn("a watched file is gone; what was read from it stays in use", "files", w.name, "paths", w.paths)
				continue
			}
			if err := w.reload(); err != nil {
				a.Logger.Error("a changed file could not be used; what was read before stays in use", "files", w.name, "err", err)
			}
		}
	}
}

// filesToWatch are the files Reload reads, as they are now.
func (a *App) filesToWatch() []*watchedFiles {
	var files []*watchedFiles
	if a.Config.APIKeys != "" {
		files = append(files, &watchedFiles{name: "--api-keys", paths: []string{a.Config.APIKeys}, reload: a.ReloadAPIKeys})
	}
	if a.Config.TLSCert != "" {
		files = append(files, &watchedFiles{name: "--tls-cert, --tls-key", paths: []string{a.Config.TLSCert, a.Config.TLSKey}, reload: a.ReloadTLS})
	}
	for _, w := range files {
		w.last = w.stat()
	}
	return files
}
