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
	addr string
	dir  string // --dir and the log file; removed by stop
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has been reaped
}

// startRedis starts redis-server (bin) on a free loopback port and waits
// until it answers PING. It retries with another port if the probed one is
// taken before the server binds it.
func startRedis(ctx context.Context, bin string) (*redisServer, error) {
	var lastErr error
	for range 5 {
		s, err := tryStartRedis(ctx, bin)
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

func tryStartRedis(ctx context.Context, bin string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lockproof-bench-redis-")
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", logFile)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &redisServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, cmd: cmd, done: make(chan struct{})}
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
