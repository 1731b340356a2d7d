package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
)

// apiKeyCmd: orderflow apikey --name N --role R [--tenant T] [--keys-file F].
// It makes a new key: the token goes to stdout, once; the keys-file line,
// which holds only the token's hash, is appended to the keys file (or
// printed after the token when no file is given).
func apiKeyCmd(_ context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := flag.NewFlagSet("apikey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: orderflow apikey --name NAME --role ROLE [--tenant T] [--keys-file F]\n\n"+
			"Make an HTTP API key for 'orderflow serve --api-keys F'. The token is printed once; the keys file keeps only its hash.")
		fs.PrintDefaults()
	}
	name := fs.String("name", "", "the key's name: the actor recorded for what it does")
	tenant := fs.String("tenant", eventstore.DefaultTenant, "the tenant the key acts for")
	role := fs.String("role", "", "reader, worker (also places orders and applies triggers), supervisor (also holds, resumes, cancels, moves, migrates) or admin (also changes definitions)")
	keysFile := fs.String("keys-file", "", "append the key's line to this file (made, mode 0600, when missing); empty: print the line")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	r, err := handlers.ParseRole(*role)
	if err != nil {
		return err
	}
	token, line, err := handlers.NewAPIKey(*name, *tenant, r)
	if err != nil {
		return err
	}
	if *keysFile == "" {
		_, err = fmt.Fprintf(stdout, "%s\n%s\n", token, line)
		return err
	}
	if err := appendKeyLine(*keysFile, line); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// appendKeyLine adds a key's line to a keys file, refusing one that would
// make the file unreadable (a name it already has, say). A running server
// reads the file only at its start.
func appendKeyLine(path, line string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := handlers.ParseAPIKeys(strings.NewReader(string(old) + line + "\n")); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
