package services

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "COIFLOW_SERVICES_DEATHSIG_HELPER"

// TestChildrenDieWithParent runs a copy of this test binary that starts the
// stack, kills that copy with SIGKILL (no chance to clean up), and checks the
// services it started went with it.
func TestChildrenDieWithParent(t *testing.T) {
	if dir := os.Getenv(helperEnv); dir != "" {
		st, err := Start(context.Background(), Options{StateDir: dir})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		var pids []string
		for _, p := range st.procs {
			pids = append(pids, strconv.Itoa(p.cmd.Process.Pid))
		}
		fmt.Println("PIDS", strings.Join(pids, " "))
		select {} // wait to be killed
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildrenDieWithParent$")
	cmd.Env = append(os.Environ(), helperEnv+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PIDS ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper did not start the stack: %q %v", line, err)
	}
	pids := strings.Fields(strings.TrimPrefix(line, "PIDS "))
	if len(pids) != 2 {
		t.Fatalf("helper started %d processes, want 2: %q", len(pids), line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %s outlived its killed parent", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
