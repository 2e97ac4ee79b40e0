package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bareServer is the baseline for start-up: the least a Go program can do to answer GET /.
const bareServer = `package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) })
	http.ListenAndServe("127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"), nil)
}
`

// BenchmarkServeStartToProbe measures what the Functions host waits for: from starting
// `dvrouter serve` (with the example routes) to its first answer to GET /. Compare it with
// BenchmarkBareServerStartToProbe in the same run:
//
//	go test -run '^$' -bench 'StartToProbe' -benchtime 20x .
func BenchmarkServeStartToProbe(b *testing.B) {
	bin := buildBinary(b)
	for b.Loop() {
		probeOnce(b, bin, "serve", "--routes", "examples/routes.yaml")
	}
}

func BenchmarkBareServerStartToProbe(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(bareServer), 0o600); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "bare")
	if out, err := exec.Command("go", "build", "-o", bin, src).CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	for b.Loop() {
		probeOnce(b, bin)
	}
}

func probeOnce(b *testing.B, bin string, args ...string) {
	port := freePort(b)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"FUNCTIONS_CUSTOMHANDLER_PORT=" + port}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &served{cmd: cmd, url: "http://127.0.0.1:" + port}
	s.waitProbe(b).Body.Close()
	b.StopTimer()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	b.StartTimer()
}
