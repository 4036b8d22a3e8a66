package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is one redis-server process started by this command on a
// free loopback port, with no persistence. stop kills it; on Linux the
// kernel also kills it if this process dies first (see sysProcAttr).
type redisServer struct {
	port int
	addr string
	dir  string // --dir and the log file; removed by stop
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has been reaped
}

// startRedis starts redis-server (bin) on a free loopback port, with args
// added to its command line, and waits until it answers PING. It retries
// with another port if the probed one is taken before the server binds it.
func startRedis(ctx context.Context, bin string, args ...string) (*redisServer, error) {
	var lastErr error
	for range 5 {
		s, err := tryStartRedis(ctx, bin, args)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

func tryStartRedis(ctx context.Context, bin string, args []string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lockproof-bench-redis-")
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin, append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", logFile}, args...)...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &redisServer{port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()

	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(logFile)
			os.RemoveAll(dir)
			if strings.Contains(string(log), "Address already in use") {
				return nil, errAddrInUse
			}
			return nil, fmt.Errorf("redis-server on %s exited at start:\n%s", s.addr, log)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within 10s: %v", s.addr, err)
		}
	}
}

// stop terminates the server (SIGTERM, then SIGKILL after 5s), reaps it
// and removes its directory. It is idempotent.
func (s *redisServer) stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}

// client returns a go-redis client for the server; every contender of a
// run shares such clients, so all pay the same client overhead.
// Each counts the commands it sends into sentCommands.
func (s *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr, ContextTimeoutEnabled: true})
	c.AddHook(commandCounter{})
	return c
}

// execTime returns how long the servers behind clients have spent
// executing the named commands (INFO commandstats, usec). A script's time
// includes the commands it calls, so name only the commands a client sends.
func execTime(ctx context.Context, clients []*redis.Client, commands []string) (time.Duration, error) {
	var total time.Duration
	for _, c := range clients {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(info, "\n") {
			name, stats, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "cmdstat_")), ":")
			if !ok || !slices.Contains(commands, name) {
				continue
			}
			for _, kv := range strings.Split(stats, ",") {
				if v, ok := strings.CutPrefix(kv, "usec="); ok {
					us, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						return 0, fmt.Errorf("INFO commandstats %s: %w", name, err)
					}
					total += time.Duration(us) * time.Microsecond
				}
			}
		}
	}
	return total, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// redisVersion returns the first line of `redis-server --version`.
func redisVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// startCluster starts a Redis Cluster of n masters, no replicas, the hash
// slots split evenly, and waits until every node reports cluster_state:ok
// and knows the others. What redis-cli --cluster create does, without it.
func startCluster(ctx context.Context, bin string, n int) (nodes []*redisServer, err error) {
	defer func() {
		if err != nil {
			for _, s := range nodes {
				s.stop()
			}
			nodes = nil
		}
	}()
	busPorts := make([]int, n)
	for i := range n {
		if busPorts[i], err = freePort(); err != nil {
			return nil, err
		}
		s, err := startRedis(ctx, bin, "--cluster-enabled", "yes", "--cluster-node-timeout", "5000",
			"--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(busPorts[i]))
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, s)
	}
	clients := make([]*redis.Client, n)
	for i, s := range nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.addr})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, c := range clients {
		if err := c.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return nil, fmt.Errorf("%s: CLUSTER SET-CONFIG-EPOCH: %w", nodes[i].addr, err)
		}
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return nil, fmt.Errorf("%s: CLUSTER ADDSLOTSRANGE %d %d: %w", nodes[i].addr, lo, hi, err)
		}
	}
	for i, s := range nodes[1:] {
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", s.port, busPorts[i+1]).Err(); err != nil {
			return nil, fmt.Errorf("CLUSTER MEET %s: %w", s.addr, err)
		}
	}
	want := []string{"cluster_state:ok", "cluster_slots_ok:16384", fmt.Sprintf("cluster_known_nodes:%d", n)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !hasLines(info, want) {
				ok = false
				break
			}
		}
		if ok {
			return nodes, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster %s... not ready within 20s", nodes[0].addr)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// hasLines reports whether info (INFO-style text) has every line of want.
func hasLines(info string, want []string) bool {
	have := map[string]bool{}
	for _, line := range strings.Split(info, "\n") {
		have[strings.TrimSpace(line)] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

// infoField returns the numeric field name of an INFO section's text.
func infoField(info, name string) (float64, error) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("INFO has no field %q", name)
}

// usedMemory returns INFO memory used_memory of the server behind c, bytes.
func usedMemory(ctx context.Context, c *redis.Client) (float64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	return infoField(info, "used_memory")
}

// cpuTime returns the CPU time (user + system) the servers behind clients
// have used so far, INFO cpu.
func cpuTime(ctx context.Context, clients []*redis.Client) (time.Duration, error) {
	var total float64
	for _, c := range clients {
		info, err := c.Info(ctx, "cpu").Result()
		if err != nil {
			return 0, err
		}
		for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
			v, err := infoField(info, f)
			if err != nil {
				return 0, err
			}
			total += v
		}
	}
	return time.Duration(total * float64(time.Second)), nil
}

// cmdStat is one command's line of INFO commandstats.
type cmdStat struct {
	calls       int64
	usecPerCall float64
}

// commandStats parses INFO commandstats: command name -> its stats.
func commandStats(info string) (map[string]cmdStat, error) {
	out := map[string]cmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_")), ":")
		if !ok || strings.HasPrefix(line, "#") || !strings.HasPrefix(strings.TrimSpace(line), "cmdstat_") {
			continue
		}
		var st cmdStat
		for _, kv := range strings.Split(stats, ",") {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			switch k {
			case "calls":
				st.calls, err = strconv.ParseInt(v, 10, 64)
			case "usec_per_call":
				st.usecPerCall, err = strconv.ParseFloat(v, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("INFO commandstats %s: %w", name, err)
			}
		}
		out[name] = st
	}
	return out, nil
}
