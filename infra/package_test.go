package infra_test

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// The package tests run scripts/package.sh, the script behind `make package`. Most run it in a
// small stand-in repository (a main package that prints its version, a host.json, two
// functions), so they test the packaging itself whatever state the real code is in; the last
// one packages the real repository once its host.json, functions and routes file exist.

const fakeMain = `package main

import (
	"fmt"
	"os"
	"strings"
)

var version = "unset"

func main() {
	// Stands in for dvrouter validate --no-resolve --routes FILE: a file saying "invalid" is.
	if len(os.Args) == 5 && os.Args[1] == "validate" && os.Args[2] == "--no-resolve" && os.Args[3] == "--routes" {
		data, err := os.ReadFile(os.Args[4])
		if err != nil || strings.Contains(string(data), "invalid") {
			fmt.Fprintln(os.Stderr, os.Args[4]+":1:1: invalid route file")
			os.Exit(1)
		}
		return
	}
	fmt.Println(version)
}
`

const fakeHost = `{
  "version": "2.0",
  "customHandler": {
    "description": {"defaultExecutablePath": "dvrouter", "arguments": ["serve"]},
    "enableForwardingHttpRequest": true
  }
}
`

const fakeFunction = `{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function"}, {"type": "http", "direction": "out", "name": "res"}]}`

// standIn writes a stand-in repository with the real package script and returns its path.
func standIn(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join(root(t), "scripts", "package.sh"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{
		"go.mod":                            "module example.com/standin\n\ngo 1.26\n",
		"main.go":                           fakeMain,
		"host.json":                         fakeHost,
		"functions/Alpha/function.json":     fakeFunction,
		"functions/Beta/function.json":      fakeFunction,
		"functions/not-a-function/README":   "folders without function.json are not functions\n",
		"examples/routes.yaml":              "routes: []\n",
		"scripts/package.sh":                string(script),
		"local.settings.json":               "{}\n",
		"functions/Alpha/local-notes.md":    "only function.json is packaged\n",
		"testdata/never-packaged.json":      "{}\n",
		"infra/never-packaged.bicep":        "\n",
		"dist/stale-file-from-earlier.json": "{}\n",
	}
	for k, v := range files {
		if v == "" {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	for name, text := range all {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runPackage runs scripts/package.sh in dir with extra environment and returns its output and
// whether it succeeded.
func runPackage(t *testing.T, dir string, env ...string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	cmd := exec.Command("bash", filepath.Join(dir, "scripts", "package.sh"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"GOWORK=off"}, env...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// checkZip opens the package and checks what a Functions host needs of it: host.json at the
// root naming an executable entry, each function folder with valid JSON, the binary a static
// linux/amd64 ELF with its exec bit, and the routes file. It returns the entries' bodies.
func checkZip(t *testing.T, path string, functions []string) map[string][]byte {
	t.Helper()
	z, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer z.Close()

	want := []string{"dvrouter", "host.json", "routes.yaml"}
	for _, f := range functions {
		want = append(want, f+"/function.json")
	}
	sort.Strings(want)
	var got []string
	bodies := map[string][]byte{}
	modes := map[string]os.FileMode{}
	for _, f := range z.File {
		got = append(got, f.Name)
		modes[f.Name] = f.Mode()
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", f.Name, err)
		}
		bodies[f.Name] = b
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("zip entries:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(bodies["host.json"], &host); err != nil {
		t.Fatalf("host.json: %v", err)
	}
	exe := host.CustomHandler.Description.DefaultExecutablePath
	if _, ok := bodies[exe]; !ok {
		t.Fatalf("host.json defaultExecutablePath %q names no entry of the zip", exe)
	}
	if m := modes[exe]; !m.IsRegular() || m.Perm()&0o111 != 0o111 {
		t.Errorf("%s mode %v: want a regular file executable by all (0755)", exe, m)
	}
	for _, name := range want {
		if name != exe && modes[name].Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", name, modes[name].Perm())
		}
	}
	for _, f := range functions {
		if !json.Valid(bodies[f+"/function.json"]) {
			t.Errorf("%s/function.json is not valid JSON", f)
		}
	}

	bin, err := elf.NewFile(bytes.NewReader(bodies[exe]))
	if err != nil {
		t.Fatalf("%s is not an ELF binary: %v", exe, err)
	}
	if bin.Machine != elf.EM_X86_64 || bin.Class != elf.ELFCLASS64 {
		t.Errorf("%s is %v/%v, want linux/amd64", exe, bin.Class, bin.Machine)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s asks for a dynamic loader; it must be static (CGO_ENABLED=0)", exe)
		}
	}
	return bodies
}

func TestPackage_ZipHasTheHostLayout(t *testing.T) {
	dir := standIn(t, nil)
	out, ok := runPackage(t, dir, "VERSION=1.2.3-test")
	if !ok {
		t.Fatalf("package.sh failed:\n%s", out)
	}
	bodies := checkZip(t, filepath.Join(dir, "dist", "dvrouter.zip"), []string{"Alpha", "Beta"})
	if string(bodies["routes.yaml"]) != "routes: []\n" {
		t.Errorf("routes.yaml = %q, want the contents of examples/routes.yaml", bodies["routes.yaml"])
	}

	// The version is stamped into the binary: run it where the platform allows.
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		got, err := exec.Command(filepath.Join(dir, "dist", "pkg", "dvrouter")).Output()
		if err != nil {
			t.Fatalf("run the packaged binary: %v", err)
		}
		if strings.TrimSpace(string(got)) != "1.2.3-test" {
			t.Errorf("binary prints version %q, want 1.2.3-test (-X main.version)", got)
		}
	}
}

func TestPackage_RoutesAndOutputFolderComeFromTheEnvironment(t *testing.T) {
	dir := standIn(t, map[string]string{"config/prod-routes.yaml": "routes:\n  - name: prod\n"})
	outDir := t.TempDir()
	out, ok := runPackage(t, dir, "ROUTES=config/prod-routes.yaml", "DIST="+outDir)
	if !ok {
		t.Fatalf("package.sh failed:\n%s", out)
	}
	bodies := checkZip(t, filepath.Join(outDir, "dvrouter.zip"), []string{"Alpha", "Beta"})
	if string(bodies["routes.yaml"]) != "routes:\n  - name: prod\n" {
		t.Errorf("routes.yaml = %q, want the contents of $ROUTES", bodies["routes.yaml"])
	}
}

func TestPackage_Refuses(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		env   []string
		want  string
	}{
		{
			name:  "host.json naming another executable",
			files: map[string]string{"host.json": strings.Replace(fakeHost, `"dvrouter"`, `"handler"`, 1)},
			want:  "defaultExecutablePath is 'handler'",
		},
		{
			name:  "host.json that is not JSON",
			files: map[string]string{"host.json": "{\"version\": \"2.0\",\n"},
			want:  "host.json is not valid JSON",
		},
		{
			name:  "a function.json that is not JSON",
			files: map[string]string{"functions/Beta/function.json": "{\"bindings\": [\n"},
			want:  "functions/Beta/function.json is not valid JSON",
		},
		{
			name:  "no functions",
			files: map[string]string{"functions/Alpha/function.json": "", "functions/Beta/function.json": ""},
			want:  "no functions/<Name>/function.json found",
		},
		{
			name: "a missing routes file",
			env:  []string{"ROUTES=nowhere/routes.yaml"},
			want: "routes file nowhere/routes.yaml not found",
		},
		{
			name:  "a routes file that does not validate",
			files: map[string]string{"examples/routes.yaml": "routes: invalid\n"},
			want:  "examples/routes.yaml:1:1: invalid route file",
		},
		{
			name:  "a binary that does not build",
			files: map[string]string{"main.go": "package main\n\nfunc main() { undefined() }\n"},
			want:  "undefined",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := standIn(t, c.files)
			out, ok := runPackage(t, dir, c.env...)
			if ok {
				t.Fatalf("package.sh succeeded; want a refusal mentioning %q:\n%s", c.want, out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "dist", "dvrouter.zip")); err == nil {
				t.Error("a refused package still left dist/dvrouter.zip")
			}
		})
	}
}

// TestPackage_RealRepository packages this repository as `make package` does, into a temporary
// folder, once the pieces it needs exist.
func TestPackage_RealRepository(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary; skipped with -short")
	}
	r := root(t)
	for _, need := range []string{"host.json", "functions", "main.go", "examples/routes.yaml"} {
		if _, err := os.Stat(filepath.Join(r, need)); err != nil {
			t.Skipf("%s does not exist yet; the package needs it", need)
		}
	}
	entries, err := os.ReadDir(filepath.Join(r, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	var functions []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(r, "functions", e.Name(), "function.json")); err == nil {
			functions = append(functions, e.Name())
		}
	}
	outDir := t.TempDir()
	cmd := exec.Command("bash", "scripts/package.sh")
	cmd.Dir = r
	cmd.Env = append(os.Environ(), "DIST="+outDir, "VERSION=test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	checkZip(t, filepath.Join(outDir, "dvrouter.zip"), functions)

	// A route file the service would refuse is refused here, with the validator's messages.
	bad := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(bad, []byte("routes:\n  - name: r\n    table: account\n    consumers: [nobody]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badOut := t.TempDir()
	cmd = exec.Command("bash", "scripts/package.sh")
	cmd.Dir = r
	cmd.Env = append(os.Environ(), "DIST="+badOut, "VERSION=test", "ROUTES="+bad)
	out, err = cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("scripts/package.sh packaged an invalid routes file:\n%s", out)
	}
	if !strings.Contains(string(out), `unknown consumer "nobody"`) || !strings.Contains(string(out), "is invalid") {
		t.Errorf("output lacks the validator's problem and the refusal:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(badOut, "dvrouter.zip")); err == nil {
		t.Error("a refused package still left dvrouter.zip")
	}
}
