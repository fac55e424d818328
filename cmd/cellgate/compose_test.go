package main

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/workflows"
)

// No Docker engine runs here, so the production stack is checked without starting it: these
// tests read temporal-compose.yml and the Dockerfile it builds, and catch what would otherwise
// only show at `docker compose up` — a variable the binary requires but the file does not set,
// a dependency or port that does not line up, an image that is not pinned.

const (
	composePath    = "../../temporal-compose.yml"
	dockerfilePath = "../../Dockerfile"
)

func TestComposeFile(t *testing.T) {
	doc, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkCompose(doc) {
		t.Errorf("%s: %s", composePath, p)
	}
}

func TestComposeDockerfile(t *testing.T) {
	doc, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatalf("temporal-compose.yml builds the Dockerfile: %v", err)
	}
	for _, p := range checkDockerfile(doc) {
		t.Errorf("%s: %s", dockerfilePath, p)
	}
}

// The checkers must find each kind of problem, or the tests above prove nothing.
func TestComposeCheckerFindsProblems(t *testing.T) {
	broken := `
services:
  db:
    image: postgres
  temporal:
    image: temporalio/server:latest
  search-attributes:
    image: temporalio/admin-tools:1.29.1-tctl-1.18.4-cli-1.5.0
    restart: unless-stopped
    environment:
      TEMPORAL_ADDRESS: temporal:7234
      TEMPORAL_NAMESPACE: default
    command: temporal operator search-attribute create --name OperatorId --type Text --name Extra --type Keyword
  api:
    build: .
    command: ["api"]
    environment:
      DATABASE_URL: postgres://cellgate:${PW:-secret}@database:5432/cellgate
      TEMPORAL_NAMESPACE: ""
    depends_on:
      migrate:
        condition: service_completed_successfully
      temporal:
        condition: service_healthy
      db:
        condition: service_ready
    ports: ["8080:8080"]
  worker:
    build: .
    command: wroker
    depends_on:
      search-attributes:
        condition: service_completed_successfully
    ports: ["127.0.0.1:8080:9000"]
  internal-open:
    build: .
    command: ["api"]
    environment:
      CELLGATE_INTERNAL_LISTEN: ":8090"
    ports: ["8090:8090"]
  internal-loopback:
    build: .
    command: ["api"]
    environment:
      CELLGATE_INTERNAL_LISTEN: "127.0.0.1:8091"
    ports: ["10.0.0.5:8091:8091"]
`
	want := []string{
		`service db: image "postgres" is not pinned to a tag`,
		`service temporal: image "temporalio/server:latest" uses tag latest`,
		`service search-attributes: TEMPORAL_ADDRESS "temporal:7234": temporal's frontend listens on port 7233`,
		`service search-attributes: creates search attribute OperatorId as Text, want Keyword`,
		`service search-attributes: does not create search attribute DeviceId (Keyword)`,
		`service search-attributes: creates search attribute Extra, which is not in workflows.SearchAttributeKeys`,
		`service api: missing TEMPORAL_ADDRESS`,
		`service api: CELLGATE_SECURE_COOKIES is not set: say whether the api is served over HTTPS`,
		`service api: TEMPORAL_NAMESPACE is empty`,
		`service api: DATABASE_URL host "database" is not a service in this file`,
		`service api: depends_on migrate: no such service`,
		`service api: depends_on temporal: condition service_healthy, but temporal has no healthcheck`,
		`service api: depends_on db: unknown condition "service_ready"`,
		`service api: must depend on search-attributes (condition service_completed_successfully), which creates the namespace's search attributes`,
		`service worker: command "wroker" is not a cellgate subcommand (api, worker, migrate, import-legacy, dev, operator, tunnel, ovpn-hook, agent, openvpn)`,
		`service worker: published port 127.0.0.1:8080/tcp collides with service api's 8080/tcp`,
		`service internal-open: publishes the internal listener (container port 8090) on every host address: give the host IP of the network the relays share, e.g. 10.0.0.5:8090:8090`,
		`service internal-loopback: publishes port 8091, but CELLGATE_INTERNAL_LISTEN "127.0.0.1:8091" is the container's loopback, which no published port reaches`,
		`no service runs "cellgate migrate"`,
		`service worker: depends_on search-attributes: condition service_completed_successfully, but search-attributes has restart unless-stopped`,
	}
	got := checkCompose([]byte(broken))
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("checkCompose(broken) does not report\n\t%s", w)
		}
	}
	if t.Failed() {
		t.Logf("checkCompose(broken) reported:\n\t%s", strings.Join(got, "\n\t"))
	}

	dockerfile := `
FROM golang AS build
RUN go build -o /cellgate ./cmd/other
FROM build
FROM debian:latest
`
	wantDocker := []string{
		`FROM golang is not pinned to a tag`,
		`FROM debian:latest uses tag latest`,
		`no RUN line builds ./cmd/cellgate with go build`,
	}
	gotDocker := checkDockerfile([]byte(dockerfile))
	if !slices.Equal(gotDocker, wantDocker) {
		t.Errorf("checkDockerfile(broken) =\n\t%s\nwant\n\t%s", strings.Join(gotDocker, "\n\t"), strings.Join(wantDocker, "\n\t"))
	}
}

// composeFile is the part of a compose file the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string              `yaml:"image"`
	Build       any                 `yaml:"build"` // any form: only whether it is there matters
	Restart     string              `yaml:"restart"`
	Entrypoint  composeWords        `yaml:"entrypoint"`
	Command     composeWords        `yaml:"command"`
	Environment composeEnv          `yaml:"environment"`
	DependsOn   composeDependsOn    `yaml:"depends_on"`
	Ports       []composePort       `yaml:"ports"`
	Healthcheck *composeHealthcheck `yaml:"healthcheck"`
}

// isCellgate reports whether the service runs the image built from this repository.
func (s composeService) isCellgate() bool { return s.Build != nil }

// script is the service's entrypoint and command as one text, for searching.
func (s composeService) script() string {
	return strings.Join(slices.Concat(s.Entrypoint, s.Command), " ")
}

type composeHealthcheck struct {
	Test    composeWords `yaml:"test"`
	Disable bool         `yaml:"disable"`
}

func (s composeService) hasHealthcheck() bool {
	h := s.Healthcheck
	return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
}

// composeWords is a command, entrypoint or healthcheck test: a list, or a string split on spaces.
type composeWords []string

func (w *composeWords) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*w = strings.Fields(n.Value)
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*w = list
	return nil
}

// composeEnv is the environment, given as a map or as a list of KEY=VALUE. A variable without
// a value (passed through from the host) is empty here.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]*string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		(*e)[k] = ""
		if v != nil {
			(*e)[k] = *v
		}
	}
	return nil
}

// composeDependsOn maps each dependency to its condition.
type composeDependsOn map[string]string

func (d *composeDependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = composeDependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			(*d)[name] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for name, dep := range m {
		(*d)[name] = orDefault(dep.Condition, "service_started")
	}
	return nil
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// composePort is a port published on the host; Published is empty when the container port is
// only exposed on an ephemeral host port. Target is the container's port.
type composePort struct {
	HostIP    string
	Published string
	Target    string
	Protocol  string
}

func (p *composePort) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var long struct {
			HostIP    string `yaml:"host_ip"`
			Published string `yaml:"published"`
			Target    string `yaml:"target"`
			Protocol  string `yaml:"protocol"`
		}
		if err := n.Decode(&long); err != nil {
			return err
		}
		*p = composePort{long.HostIP, long.Published, long.Target, orDefault(long.Protocol, "tcp")}
		return nil
	}
	// Short syntax: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL], HOST_IP maybe [IPv6].
	s, proto, _ := strings.Cut(n.Value, "/")
	p.Protocol = orDefault(proto, "tcp")
	if strings.HasPrefix(s, "[") {
		ip, rest, ok := strings.Cut(s[1:], "]:")
		if !ok {
			return fmt.Errorf("port %q: bad IPv6 address", n.Value)
		}
		p.HostIP, s = ip, rest
	}
	parts := strings.Split(s, ":")
	p.Target = parts[len(parts)-1]
	switch len(parts) {
	case 1:
	case 2:
		p.Published = parts[0]
	case 3:
		p.HostIP, p.Published = parts[0], parts[1]
	default:
		return fmt.Errorf("port %q: want [HOST_IP:][HOST_PORT:]CONTAINER_PORT", n.Value)
	}
	return nil
}

func (p composePort) String() string {
	if p.HostIP == "" {
		return p.Published + "/" + p.Protocol
	}
	return net.JoinHostPort(p.HostIP, p.Published) + "/" + p.Protocol
}

// anyIP reports whether a published port's host IP means every address of the host.
func anyIP(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

// collides reports whether p and q cannot both be published on one host.
func (p composePort) collides(q composePort) bool {
	return p.Published == q.Published && p.Protocol == q.Protocol &&
		(p.HostIP == q.HostIP || anyIP(p.HostIP) || anyIP(q.HostIP))
}

// composeVar is a ${...} or $NAME reference, or the $$ escape, in a compose file value.
var composeVar = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate resolves a compose value as if no variable were set: ${VAR:-default} is its
// default, ${VAR:?message} (which compose refuses to start without) stands for a value, and
// everything else is empty. The checks thus see what a fresh checkout runs with.
func interpolate(s string) string {
	return composeVar.ReplaceAllStringFunc(s, func(ref string) string {
		if ref == "$$" {
			return "$"
		}
		m := composeVar.FindStringSubmatch(ref)
		switch op := m[2]; {
		case strings.HasSuffix(op, "-"):
			return m[3]
		case strings.HasSuffix(op, "?"):
			return "<" + m[1] + ">"
		}
		return ""
	})
}

// interpolateNode interpolates every scalar of the document once. Aliases are skipped: the
// node they point at is interpolated where it is defined.
func interpolateNode(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		n.Value = interpolate(n.Value)
	}
	for _, c := range n.Content {
		interpolateNode(c)
	}
}

var (
	// composeSubcommands are the cellgate subcommands the production stack runs. (The tunnel
	// joins them once `cellgate tunnel` exists.)
	composeSubcommands = []string{"migrate", "api", "worker"}
	// composeConditions are the conditions a depends_on entry may wait for.
	composeConditions = []string{"service_started", "service_healthy", "service_completed_successfully"}
	// searchAttributeCreate matches each --name N --type T pair of
	// `temporal operator search-attribute create`.
	searchAttributeCreate = regexp.MustCompile(`--name[ =]+(\S+)\s+--type[ =]+(\S+)`)
)

// checkCompose checks a compose file for cellgate's production stack and returns its problems,
// each naming the service and field that is wrong:
//   - each image is pinned to a tag other than latest, except cellgate's own, built here;
//   - each depends_on names a service of the file with a valid condition; service_healthy
//     waits on a service that has a healthcheck, service_completed_successfully on one that
//     is not restarted forever;
//   - each TEMPORAL_ADDRESS is host:port of the Temporal server's frontend;
//   - services run cellgate migrate, api and worker; each cellgate service runs a real
//     subcommand, sets every variable requiredEnv lists for it, reaches Postgres at a service
//     of the file, and starts after migrations and after the search attributes exist;
//   - one service creates exactly workflows.SearchAttributeKeys, as Keyword, in the namespace
//     cellgate uses;
//   - a cellgate service's internal listener (/internal/v1), when published, listens on the
//     container's interfaces and is published on one host address (a private one), never on
//     every address;
//   - no two services publish the same host port.
func checkCompose(doc []byte) []string {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return []string{"parse: " + err.Error()}
	}
	interpolateNode(&root)
	var f composeFile
	if err := root.Decode(&f); err != nil {
		return []string{"parse: " + err.Error()}
	}
	if len(f.Services) == 0 {
		return []string{"no services"}
	}
	c := composeChecker{file: f, names: slices.Sorted(maps.Keys(f.Services))}
	for _, sub := range composeSubcommands {
		if len(c.servicesRunning(sub)) == 0 {
			c.report("", "no service runs \"cellgate %s\"", sub)
		}
	}
	for _, name := range c.names {
		c.checkImage(name)
		c.checkDependsOn(name)
		c.checkTemporalAddress(name)
		if f.Services[name].isCellgate() {
			c.checkCellgate(name)
			c.checkInternalListener(name)
		}
	}
	c.checkSearchAttributes()
	c.checkPorts()
	return c.problems
}

type composeChecker struct {
	file     composeFile
	names    []string // service names, sorted
	problems []string
}

func (c *composeChecker) report(service, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if service != "" {
		msg = "service " + service + ": " + msg
	}
	c.problems = append(c.problems, msg)
}

func (c *composeChecker) checkImage(name string) {
	s := c.file.Services[name]
	switch {
	case s.isCellgate():
	case s.Image == "":
		c.report(name, "no image and no build")
	default:
		if p := imagePinProblem(s.Image); p != "" {
			c.report(name, "image %q %s", s.Image, p)
		}
	}
}

// imagePinProblem says why an image reference is not pinned, or returns "".
func imagePinProblem(image string) string {
	if strings.Contains(image, "@sha256:") {
		return ""
	}
	lastPart := image[strings.LastIndex(image, "/")+1:] // a registry's host:port comes before a /
	_, tag, ok := strings.Cut(lastPart, ":")
	switch {
	case !ok || tag == "":
		return "is not pinned to a tag"
	case tag == "latest":
		return "uses tag latest"
	}
	return ""
}

func (c *composeChecker) checkDependsOn(name string) {
	for _, dep := range slices.Sorted(maps.Keys(c.file.Services[name].DependsOn)) {
		cond := c.file.Services[name].DependsOn[dep]
		target, ok := c.file.Services[dep]
		switch {
		case !ok:
			c.report(name, "depends_on %s: no such service", dep)
		case !slices.Contains(composeConditions, cond):
			c.report(name, "depends_on %s: unknown condition %q", dep, cond)
		case cond == "service_healthy" && !target.hasHealthcheck():
			c.report(name, "depends_on %s: condition service_healthy, but %s has no healthcheck", dep, dep)
		case cond == "service_completed_successfully" && (target.Restart == "always" || target.Restart == "unless-stopped"):
			c.report(name, "depends_on %s: condition service_completed_successfully, but %s has restart %s", dep, dep, target.Restart)
		}
	}
}

// temporalFrontendPort returns the frontend port of service name when it is a Temporal server.
func (c *composeChecker) temporalFrontendPort(name string) (port string, ok bool) {
	s, ok := c.file.Services[name]
	if !ok {
		return "", false
	}
	repo := s.Image
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	if !strings.HasSuffix(repo, "temporalio/server") && !strings.HasSuffix(repo, "temporalio/auto-setup") {
		return "", false
	}
	return orDefault(s.Environment["FRONTEND_GRPC_PORT"], "7233"), true
}

func (c *composeChecker) checkTemporalAddress(name string) {
	addr, ok := c.file.Services[name].Environment["TEMPORAL_ADDRESS"]
	if !ok || addr == "" {
		return // a cellgate service without it is reported by checkCellgate
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.report(name, "TEMPORAL_ADDRESS %q is not host:port", addr)
		return
	}
	frontend, ok := c.temporalFrontendPort(host)
	switch {
	case !ok:
		c.report(name, "TEMPORAL_ADDRESS %q: %s is not a Temporal server service in this file", addr, host)
	case port != frontend:
		c.report(name, "TEMPORAL_ADDRESS %q: %s's frontend listens on port %s", addr, host, frontend)
	}
}

func (c *composeChecker) checkCellgate(name string) {
	s := c.file.Services[name]
	if len(s.Command) == 0 {
		c.report(name, "no command: want a cellgate subcommand")
		return
	}
	sub := s.Command[0]
	var names []string
	for _, sc := range subcommands {
		names = append(names, sc.name)
	}
	if !slices.Contains(names, sub) {
		c.report(name, "command %q is not a cellgate subcommand (%s)", sub, strings.Join(names, ", "))
		return
	}
	for _, v := range requiredEnv(sub) {
		switch val, ok := s.Environment[v]; {
		case !ok:
			c.report(name, "missing %s", v)
		case val == "":
			c.report(name, "%s is empty", v)
		}
	}
	// An api beyond loopback marks its cookie Secure unless told otherwise: the file must say
	// whether HTTPS is in front of it.
	if _, ok := s.Environment["CELLGATE_SECURE_COOKIES"]; sub == "api" && !ok && !api.LoopbackListen(orDefault(s.Environment["CELLGATE_API_LISTEN"], ":8080")) {
		c.report(name, "CELLGATE_SECURE_COOKIES is not set: say whether the api is served over HTTPS")
	}
	if dbURL := s.Environment["DATABASE_URL"]; dbURL != "" {
		u, err := url.Parse(dbURL)
		if err != nil {
			c.report(name, "DATABASE_URL: %v", err)
		} else if _, ok := c.file.Services[u.Hostname()]; !ok {
			c.report(name, "DATABASE_URL host %q is not a service in this file", u.Hostname())
		}
	}
	// api and worker refuse to start on a schema behind the binary, and cellgate's workflows
	// carry the search attributes: both must exist first.
	if sub != "migrate" && slices.Contains(requiredEnv(sub), "DATABASE_URL") {
		for _, m := range c.servicesRunning("migrate") {
			c.wantDependency(name, m, "which migrates the database")
		}
	}
	if slices.Contains(requiredEnv(sub), "TEMPORAL_ADDRESS") {
		if sa, ok := c.searchAttributeService(); ok {
			c.wantDependency(name, sa, "which creates the namespace's search attributes")
		}
	}
}

// checkInternalListener checks how a cellgate service publishes its internal listener
// (CELLGATE_INTERNAL_LISTEN), which serves /internal/v1 to the relays: a published port reaches
// only a listener on the container's own interfaces, and it must bind one host address, on the
// network the relays share; on every address of the host the internal API faces the world.
func (c *composeChecker) checkInternalListener(name string) {
	s := c.file.Services[name]
	addr := s.Environment["CELLGATE_INTERNAL_LISTEN"]
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.report(name, "CELLGATE_INTERNAL_LISTEN %q is not host:port", addr)
		return
	}
	for _, p := range s.Ports {
		if p.Target != port || p.Protocol != "tcp" {
			continue
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			c.report(name, "publishes port %s, but CELLGATE_INTERNAL_LISTEN %q is the container's loopback, which no published port reaches", port, addr)
		}
		if p.Published == "" || anyIP(p.HostIP) {
			c.report(name, "publishes the internal listener (container port %s) on every host address: give the host IP of the network the relays share, e.g. 10.0.0.5:%s:%s", port, port, port)
		}
	}
}

func (c *composeChecker) wantDependency(name, dep, why string) {
	if c.file.Services[name].DependsOn[dep] != "service_completed_successfully" {
		c.report(name, "must depend on %s (condition service_completed_successfully), %s", dep, why)
	}
}

// servicesRunning returns the cellgate services whose subcommand is sub.
func (c *composeChecker) servicesRunning(sub string) []string {
	var found []string
	for _, name := range c.names {
		s := c.file.Services[name]
		if s.isCellgate() && len(s.Command) > 0 && s.Command[0] == sub {
			found = append(found, name)
		}
	}
	return found
}

// searchAttributeService returns the service that runs `temporal operator search-attribute create`.
func (c *composeChecker) searchAttributeService() (string, bool) {
	for _, name := range c.names {
		if strings.Contains(c.file.Services[name].script(), "search-attribute create") {
			return name, true
		}
	}
	return "", false
}

func (c *composeChecker) checkSearchAttributes() {
	name, ok := c.searchAttributeService()
	if !ok {
		c.report("", "no service creates the search attributes (temporal operator search-attribute create)")
		return
	}
	s := c.file.Services[name]
	created := map[string]string{} // name → type
	for _, m := range searchAttributeCreate.FindAllStringSubmatch(s.script(), -1) {
		created[m[1]] = m[2]
	}
	for _, key := range workflows.SearchAttributeKeys {
		typ, ok := created[key.GetName()]
		switch {
		case !ok:
			c.report(name, "does not create search attribute %s (Keyword)", key.GetName())
		case !strings.EqualFold(typ, "Keyword"):
			c.report(name, "creates search attribute %s as %s, want Keyword", key.GetName(), typ)
		}
		delete(created, key.GetName())
	}
	for _, extra := range slices.Sorted(maps.Keys(created)) {
		c.report(name, "creates search attribute %s, which is not in workflows.SearchAttributeKeys", extra)
	}
	if _, ok := s.Environment["TEMPORAL_ADDRESS"]; !ok && !strings.Contains(s.script(), "--address") {
		c.report(name, "sets no TEMPORAL_ADDRESS: the temporal CLI would dial localhost")
	}
	ns := orDefault(s.Environment["TEMPORAL_NAMESPACE"], "default")
	for _, other := range c.names {
		o := c.file.Services[other]
		if got := o.Environment["TEMPORAL_NAMESPACE"]; o.isCellgate() && got != "" && got != ns {
			c.report(other, "TEMPORAL_NAMESPACE %q, but %s creates the search attributes in %q", got, name, ns)
		}
	}
}

func (c *composeChecker) checkPorts() {
	type published struct {
		service string
		port    composePort
	}
	var seen []published
	for _, name := range c.names {
		for _, p := range c.file.Services[name].Ports {
			if p.Published == "" {
				continue
			}
			for _, q := range seen {
				if p.collides(q.port) {
					c.report(name, "published port %s collides with service %s's %s", p, q.service, q.port)
				}
			}
			seen = append(seen, published{name, p})
		}
	}
}

// checkDockerfile checks that a Dockerfile builds ./cmd/cellgate and that each base image is
// pinned to a tag other than latest.
func checkDockerfile(doc []byte) []string {
	var problems []string
	stages := map[string]bool{} // names given with FROM ... AS name
	builds := false
	text := strings.ReplaceAll(string(doc), "\\\n", " ") // join continued lines
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			args := slices.DeleteFunc(fields[1:], func(f string) bool { return strings.HasPrefix(f, "--") })
			if len(args) == 0 {
				problems = append(problems, "FROM without an image")
				continue
			}
			if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
				stages[args[2]] = true
			}
			if image := args[0]; !stages[image] {
				if p := imagePinProblem(image); p != "" {
					problems = append(problems, "FROM "+image+" "+p)
				}
			}
		case "RUN":
			if strings.Contains(line, "go build") && strings.Contains(line, "./cmd/cellgate") {
				builds = true
			}
		}
	}
	if !builds {
		problems = append(problems, "no RUN line builds ./cmd/cellgate with go build")
	}
	return problems
}
