/* rnnc.c — the host: a C program embedding Lua 5.4 that runs the generator's Lua modules.
 *
 * Modelled on Lua's own lua.c: main creates the state and runs everything inside lua_pcall;
 * the outcome maps to an exit code. User errors (bad specs, bad files, bad usage) are Lua tables
 * with __tostring and an exit code, printed as plain messages; any other error is a bug in rnnc
 * and is printed with a traceback (exit 2).
 *
 * The host gives the Lua side a small `host` table: the embedded sources, file I/O (atomic
 * writes), the machine's cache sizes and ISA, running a command, and a sandbox runner with an
 * instruction limit and a memory limit for evaluating specs. For `rnnc tune` it also starts
 * commands without waiting (pinned to chosen CPUs), waits for any of them, and turns Ctrl-C into
 * a flag the Lua side polls, so it can stop its children and keep what was measured.
 */
#define _GNU_SOURCE /* sched_setaffinity */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "embedded.h"

#ifndef RNNC_VERSION
#define RNNC_VERSION "0.1.0"
#endif

/* ---- Memory accounting: the sandbox's memory limit ------------------------------------------ */

static struct {
    size_t used;  /* bytes currently allocated by the Lua state */
    size_t limit; /* 0: unlimited; otherwise refuse growth past it */
} memory;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        memory.used -= old;
        return NULL;
    }
    if (memory.limit && nsize > old && memory.used + (nsize - old) > memory.limit)
        return NULL; /* Lua collects garbage and retries, then raises "not enough memory" */
    void *grown = realloc(ptr, nsize);
    if (grown) memory.used = memory.used - old + nsize;
    return grown;
}

/* ---- Instruction limit and deadline --------------------------------------------------------- */

#define HOOK_EVERY 1000 /* instructions between count-hook calls */

static struct {
    long long budget; /* instructions left; the hook raises an error below zero */
    int tripped;
} instructions;

/* The deadline: SIGALRM sets the flag and asks for the hook at the very next instruction (what
 * lua.c does for Ctrl-C; lua_sethook may be called from a signal handler). A C function that
 * loops without running Lua code is not interrupted, so the sandbox exposes none whose single
 * call can run long (generator/sandbox.lua); between calls the deadline catches what the
 * instruction count cannot see: instructions that each cost much (concatenating long strings). */
static lua_State *sandboxed;               /* the state running a sandboxed call, or NULL */
static volatile sig_atomic_t deadline_passed;

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    instructions.budget -= HOOK_EVERY;
    if (deadline_passed) {
        lua_pushliteral(L, "time limit exceeded");
        lua_error(L);
    }
    if (instructions.budget < 0) {
        instructions.tripped = 1;
        lua_pushliteral(L, "instruction limit exceeded");
        lua_error(L);
    }
}

static void on_deadline(int sig)
{
    (void)sig;
    deadline_passed = 1;
    if (sandboxed) lua_sethook(sandboxed, count_hook, LUA_MASKCOUNT, 1);
}

static void arm_deadline(double seconds)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_deadline;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval timer = {{0, 0}, {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)}};
    if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0) timer.it_value.tv_usec = 1;
    setitimer(ITIMER_REAL, &timer, NULL);
}

static void disarm_deadline(void)
{
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_DFL);
}

/* Message handler of the sandboxed call: a string error without the position of the sandboxed
 * chunk (raised by a C function or by the sandbox's own Lua helpers) gets the line of the
 * innermost frame of that chunk, so every error names the spec's line; error(value) with a
 * value that is not a string becomes a message saying so. upvalue 1: the chunk's short_src. */
static int sandbox_handler(lua_State *L)
{
    const char *src = lua_tostring(L, lua_upvalueindex(1));
    if (lua_type(L, 1) != LUA_TSTRING) {          /* error(t): say what it was */
        lua_pushfstring(L, "error called with a %s value", luaL_typename(L, 1)); /* err msg */
        lua_replace(L, 1);                        /* msg */
    }
    const char *msg = lua_tostring(L, 1);
    size_t n = strlen(src);
    if (strncmp(msg, src, n) == 0 && msg[n] == ':') return 1;   /* already positioned */
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar)) break;
        if (ar.currentline > 0 && strcmp(ar.short_src, src) == 0) {
            lua_pushfstring(L, "%s:%d: %s", src, ar.currentline, msg); /* msg positioned */
            return 1;
        }
    }
    return 1;
}

/* host.sandbox(fn, arg, max_instructions, max_bytes, max_seconds) -> ok, value_or_error, limit
 * Calls fn(arg) under the three limits. limit is "instructions", "memory", "time" or nil. */
static int host_sandbox(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_Integer max_instructions = luaL_checkinteger(L, 3);
    lua_Integer max_bytes = luaL_checkinteger(L, 4);
    lua_Number max_seconds = luaL_checknumber(L, 5);
    lua_settop(L, 2);                             /* fn arg */
    lua_Debug ar;
    lua_pushvalue(L, 1);                          /* fn arg fn */
    lua_getinfo(L, ">S", &ar);                    /* fn arg */
    lua_pushstring(L, ar.short_src);              /* fn arg src */
    lua_pushcclosure(L, sandbox_handler, 1);      /* fn arg handler */
    lua_insert(L, 1);                             /* handler fn arg */
    instructions.budget = max_instructions;
    instructions.tripped = 0;
    deadline_passed = 0;
    memory.limit = memory.used + (size_t)max_bytes;
    sandboxed = L;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    arm_deadline(max_seconds);
    int status = lua_pcall(L, 1, 1, 1);           /* handler result_or_error */
    disarm_deadline();
    sandboxed = NULL;
    lua_sethook(L, NULL, 0, 0);
    memory.limit = 0;
    lua_pushboolean(L, status == LUA_OK);         /* handler result ok */
    lua_insert(L, -2);                            /* handler ok result */
    if (status == LUA_OK)
        lua_pushnil(L);                           /* handler ok result nil */
    else if (status == LUA_ERRMEM)
        lua_pushliteral(L, "memory");             /* handler ok result limit */
    else if (instructions.tripped)
        lua_pushliteral(L, "instructions");       /* handler ok result limit */
    else if (deadline_passed)
        lua_pushliteral(L, "time");               /* handler ok result limit */
    else
        lua_pushnil(L);                           /* handler ok result nil */
    return 3;
}

/* ---- Files -------------------------------------------------------------------------------- */

/* host.source(path) -> text or nil: a file compiled into rnnc. */
static int host_source(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    for (const rnnc_embedded_file *f = rnnc_embedded_files; f->path; f++) {
        if (strcmp(f->path, path) == 0) {
            lua_pushlstring(L, f->data, f->size); /* text */
            return 1;
        }
    }
    lua_pushnil(L);                               /* nil */
    return 1;
}

/* host.read_file(path [, max_bytes]) -> data | nil, message
 * Reads a regular file whole: anything else (a directory, a device such as /dev/zero, a FIFO)
 * is refused before it is read. The file is checked before opening and opened non-blocking, so
 * a FIFO cannot block rnnc, then checked again on the descriptor (the path may have changed in
 * between). With max_bytes, a longer file is refused without reading past the limit. */
static int host_read_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max_bytes = luaL_optinteger(L, 2, 0);
    struct stat st;
    const char *why = NULL;
    int fd = -1;
    if (stat(path, &st) != 0) why = strerror(errno);
    else if (!S_ISREG(st.st_mode)) why = "not a regular file";
    else if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) why = strerror(errno);
    else if (fstat(fd, &st) != 0) why = strerror(errno);
    else if (!S_ISREG(st.st_mode)) why = "not a regular file";
    if (why) {
        if (fd >= 0) close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, why); /* nil message */
        return 2;
    }
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    char chunk[8192];
    ssize_t n;
    long long total = 0;
    int too_long = 0;
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        total += n;
        if (max_bytes > 0 && total > max_bytes) {
            too_long = 1;
            break;
        }
        luaL_addlstring(&buf, chunk, (size_t)n);
    }
    int failed = n < 0;
    close(fd);
    if (failed || too_long) {
        lua_pushnil(L);
        if (too_long)
            lua_pushfstring(L, "%s: larger than %I bytes", path, max_bytes); /* ... nil message */
        else
            lua_pushfstring(L, "%s: read error", path); /* ... nil message */
        return 2;
    }
    luaL_pushresult(&buf);                        /* data */
    return 1;
}

/* host.write_atomic(path, data) -> true | nil, message
 * Writes a temporary file beside path, syncs it, then renames it over path. */
static int host_write_atomic(lua_State *L)
{
    size_t size;
    const char *path = luaL_checkstring(L, 1);
    const char *data = luaL_checklstring(L, 2, &size);
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: path too long", path);
        return 2;
    }
    int fd = mkstemp(tmp);
    const char *why = NULL;
    if (fd < 0) {
        why = strerror(errno);
    } else {
        FILE *fp = fdopen(fd, "wb");
        int ok = fp && fwrite(data, 1, size, fp) == size && fflush(fp) == 0 && fsync(fd) == 0;
        if (!ok) why = strerror(errno ? errno : EIO);
        if (fp) ok = fclose(fp) == 0 && ok;
        else close(fd);
        if (!why && !ok) why = strerror(errno);
        if (!why && chmod(tmp, 0644) != 0) why = strerror(errno);
        if (!why && rename(tmp, path) != 0) why = strerror(errno);
        if (why) unlink(tmp);
    }
    if (why) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: cannot write: %s", path, why); /* nil message */
        return 2;
    }
    lua_pushboolean(L, 1);                        /* true */
    return 1;
}

/* host.mkdir_p(path) -> true | nil, message */
static int host_mkdir_p(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf) return luaL_error(L, "path too long: %s", path);
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                lua_pushnil(L);
                lua_pushfstring(L, "%s: cannot create directory: %s", buf, strerror(errno));
                return 2;
            }
            *p = saved;
            if (saved == '\0') break;
        }
    }
    lua_pushboolean(L, 1);                        /* true */
    return 1;
}

/* host.file_exists(path) -> boolean */
static int host_file_exists(lua_State *L)
{
    struct stat st;
    lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0); /* exists */
    return 1;
}

/* host.exe_dir() -> the directory holding this rnnc binary */
static int host_exe_dir(lua_State *L)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return luaL_error(L, "cannot find the rnnc binary: %s", strerror(errno));
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
    lua_pushstring(L, buf);                       /* dir */
    return 1;
}

/* host.realpath(path) -> canonical absolute path | nil, message */
static int host_realpath(lua_State *L)
{
    char buf[PATH_MAX];
    const char *path = luaL_checkstring(L, 1);
    if (!realpath(path, buf)) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno)); /* nil message */
        return 2;
    }
    lua_pushstring(L, buf);                       /* resolved */
    return 1;
}

/* ---- The machine -------------------------------------------------------------------------- */

/* Reads a sysfs cache size such as "48K" or "32768K" or "1M"; 0 if absent. */
static long long read_cache_size(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    long long value = 0;
    char unit = 0;
    int n = fscanf(fp, "%lld%c", &value, &unit);
    fclose(fp);
    if (n < 1) return 0;
    if (unit == 'K') value <<= 10;
    else if (unit == 'M') value <<= 20;
    else if (unit == 'G') value <<= 30;
    return value;
}

static int read_cache_field(const char *dir, const char *field, char *out, size_t size)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, field);
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    int ok = fgets(out, (int)size, fp) != NULL;
    fclose(fp);
    if (ok) out[strcspn(out, "\n")] = '\0';
    return ok;
}

/* host.cache_sizes() -> {l1d=bytes, l2=bytes, l3=bytes} of cpu0 (fields absent when unknown) */
static int host_cache_sizes(lua_State *L)
{
    lua_newtable(L);                              /* sizes */
    for (int index = 0; index < 8; index++) {
        char dir[128], level[16], type[32];
        snprintf(dir, sizeof dir, "/sys/devices/system/cpu/cpu0/cache/index%d", index);
        if (!read_cache_field(dir, "level", level, sizeof level)) continue;
        if (!read_cache_field(dir, "type", type, sizeof type)) continue;
        if (strcmp(type, "Instruction") == 0) continue;
        char size_path[160];
        snprintf(size_path, sizeof size_path, "%s/size", dir);
        long long bytes = read_cache_size(size_path);
        if (bytes <= 0) continue;
        const char *key = strcmp(level, "1") == 0 ? "l1d" : strcmp(level, "2") == 0 ? "l2" : "l3";
        lua_pushinteger(L, bytes);                /* sizes bytes */
        lua_setfield(L, -2, key);                 /* sizes */
    }
    return 1;
}

/* host.cpu_supports(feature) -> boolean, for "sse4.1", "avx2", "fma", "avx512f" */
static int host_cpu_supports(lua_State *L)
{
    const char *f = luaL_checkstring(L, 1);
    int yes = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (strcmp(f, "sse4.1") == 0) yes = __builtin_cpu_supports("sse4.1");
    else if (strcmp(f, "avx2") == 0) yes = __builtin_cpu_supports("avx2");
    else if (strcmp(f, "fma") == 0) yes = __builtin_cpu_supports("fma");
    else if (strcmp(f, "avx512f") == 0) yes = __builtin_cpu_supports("avx512f");
#elif defined(__aarch64__)
    yes = strcmp(f, "neon") == 0;
#endif
    lua_pushboolean(L, yes);                      /* supported */
    return 1;
}

/* host.system(command) -> exit status (-1 if it could not run) */
static int host_system(lua_State *L)
{
    int status = system(luaL_checkstring(L, 1));
    if (status != -1 && WIFEXITED(status)) status = WEXITSTATUS(status);
    else status = -1;
    lua_pushinteger(L, status);                   /* status */
    return 1;
}

/* ---- Child processes (rnnc tune) ----------------------------------------------------------- */

static volatile sig_atomic_t interrupted; /* Ctrl-C arrived since host.catch_interrupts() */

static void on_interrupt(int sig) { (void)sig; interrupted = 1; }
static void on_child(int sig) { (void)sig; } /* only wakes sigsuspend */

/* host.catch_interrupts(): from now on SIGINT and SIGTERM set a flag instead of killing rnnc. */
static int host_catch_interrupts(lua_State *L)
{
    (void)L;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_child;
    sigaction(SIGCHLD, &sa, NULL);
    return 0;
}

/* host.interrupted() -> boolean */
static int host_interrupted(lua_State *L)
{
    lua_pushboolean(L, interrupted);              /* flag */
    return 1;
}

/* host.cpus() -> { cpu numbers this process may run on }, ascending */
static int host_cpus(lua_State *L)
{
    cpu_set_t set;
    lua_newtable(L);                              /* cpus */
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    lua_Integer n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        lua_pushinteger(L, cpu);                  /* cpus cpu */
        lua_rawseti(L, -2, ++n);                  /* cpus */
    }
    return 1;
}

/* host.spawn(command, log, cpus) -> pid | nil, message
 * Runs `sh -c command` in its own process group (so a Ctrl-C at the terminal reaches rnnc only,
 * which then stops its children itself), stdin from /dev/null, stdout and stderr into the file
 * log, on the CPUs of the list cpus (all of them when nil). Does not wait. */
static int host_spawn(lua_State *L)
{
    const char *command = luaL_checkstring(L, 1);
    const char *log = luaL_checkstring(L, 2);
    cpu_set_t set;
    CPU_ZERO(&set);
    int pin = lua_istable(L, 3);
    for (lua_Integer i = 1; pin && lua_rawgeti(L, 3, i) == LUA_TNUMBER; i++) { /* ... cpu */
        CPU_SET((int)lua_tointeger(L, -1), &set);
        lua_pop(L, 1);                            /* ... */
    }
    if (pin) lua_pop(L, 1);                       /* ... (the nil that ended the list) */
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", log, strerror(errno)); /* nil message */
        return 2;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (pin) sched_setaffinity(0, sizeof set, &set);
        if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    int saved = errno;
    close(fd);
    if (pid < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot start a process: %s", strerror(saved)); /* nil message */
        return 2;
    }
    setpgid(pid, pid); /* also from here: whichever runs first, the group exists before a kill */
    lua_pushinteger(L, pid);                      /* pid */
    return 1;
}

/* host.wait([through_interrupts]) -> pid, exit status (-1: killed by a signal)
 *                                  | nil, "interrupted" | nil, "none" (no children left)
 * Waits for any child; after a Ctrl-C it returns at once unless through_interrupts is true (the
 * clean-up after one). SIGINT and SIGCHLD are blocked between the checks and sigsuspend, so
 * neither a Ctrl-C nor a child's exit can slip in unnoticed. */
static int host_wait(lua_State *L)
{
    int through = lua_toboolean(L, 1);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            lua_pushinteger(L, pid);              /* pid */
            lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : -1); /* pid status */
            return 2;
        }
        if (pid < 0 || (interrupted && !through)) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            lua_pushnil(L);
            lua_pushstring(L, pid < 0 ? "none" : "interrupted"); /* nil why */
            return 2;
        }
        sigsuspend(&old);
    }
}

/* host.kill(pid): SIGTERM to the child's process group (the shell and what it started). */
static int host_kill(lua_State *L)
{
    kill(-(pid_t)luaL_checkinteger(L, 1), SIGTERM);
    return 0;
}

/* ---- Text for the terminal ----------------------------------------------------------------- */

/* Text from a spec, a path or a file reaches the terminal only through this rule (the runtime's
 * nnrt__printable applies it to what it reads from files): control characters (C0 but the line
 * break and the tab, DEL, C1), malformed UTF-8 and the bidirectional overrides could forge lines
 * of output or drive the terminal, so each becomes '?'. Printable ASCII and well-formed UTF-8 stay, so a path
 * such as /home/josé/ still reads as itself. Returns the bytes of the sequence at p to keep, or 0
 * for a byte that becomes '?'. */
static size_t printable_length(const unsigned char *p, size_t n)
{
    if (p[0] == '\n' || p[0] == '\t' || (p[0] >= 0x20 && p[0] < 0x7f)) return 1;
    if (p[0] < 0xc2 || p[0] > 0xf4) return 0;     /* control, DEL, continuation, overlong, > U+10FFFF */
    size_t k = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    if (n < k) return 0;
    uint32_t cp = p[0] & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    if (cp < 0xa0) return 0;                      /* C1 controls (U+0085, CSI U+009B, ...) */
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029)
        return 0;                                 /* bidi overrides and isolates, line separators */
    return k;
}

/* Pushes text after the rule above. */
static void push_printable(lua_State *L, const char *text, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len;) {
        size_t k = printable_length((const unsigned char *)text + i, len - i);
        if (k == 0) {
            luaL_addchar(&b, '?');
            i++;
        } else {
            luaL_addlstring(&b, text + i, k);
            i += k;
        }
    }
    luaL_pushresult(&b);                          /* clean */
}

/* host.printable(text) -> text with every control character and malformed byte replaced by '?' */
static int host_printable(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    push_printable(L, text, len);                 /* text clean */
    return 1;
}

/* io.write for the generator: every piece after the rule above, so nothing the Lua side prints
 * (paths in "wrote ..." lines, info's report, tune's tables) can drive the terminal. */
static int clean_write(lua_State *L)
{
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *text = luaL_checklstring(L, i, &len);
        push_printable(L, text, len);             /* ... clean */
        size_t clean_len;
        const char *clean = lua_tolstring(L, -1, &clean_len);
        fwrite(clean, 1, clean_len, stdout);
        lua_pop(L, 1);                            /* ... */
    }
    lua_pushboolean(L, 1);                        /* ... true */
    return 1;
}

/* Replaces io.write (the generator's only way to stdout) by clean_write. */
static void install_clean_write(lua_State *L)
{
    lua_getglobal(L, "io");                       /* io */
    lua_pushcfunction(L, clean_write);            /* io clean_write */
    lua_setfield(L, -2, "write");                 /* io */
    lua_pop(L, 1);                                /* (empty) */
}

/* Prints text to stderr after the rule above, and a line break. */
static void print_message(lua_State *L, const char *text, size_t len)
{
    push_printable(L, text, len);                 /* ... clean */
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_pop(L, 1);                                /* ... */
}

/* ---- Hashes ------------------------------------------------------------------------------- */

/* FNV-1a, 64 bits: cache keys, not security. */
static uint64_t fnv1a(uint64_t h, const char *data, size_t size)
{
    for (size_t i = 0; i < size; i++) h = (h ^ (unsigned char)data[i]) * 0x100000001b3ULL;
    return h;
}

static int push_hash(lua_State *L, uint64_t h)
{
    char text[17];
    snprintf(text, sizeof text, "%016llx", (unsigned long long)h);
    lua_pushstring(L, text);                      /* hex */
    return 1;
}

/* host.hash(text, ...) -> 16 hex digits over every argument (each length-prefixed) */
static int host_hash(lua_State *L)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 1; i <= lua_gettop(L); i++) {
        size_t size;
        const char *data = luaL_checklstring(L, i, &size);
        char length[32];
        h = fnv1a(h, length, (size_t)snprintf(length, sizeof length, "%zu:", size));
        h = fnv1a(h, data, size);
    }
    return push_hash(L, h);
}

/* host.generator_hash() -> 16 hex digits over rnnc's version and every embedded file */
static int host_generator_hash(lua_State *L)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, RNNC_VERSION, sizeof RNNC_VERSION);
    for (const rnnc_embedded_file *f = rnnc_embedded_files; f->path; f++) {
        h = fnv1a(h, f->path, strlen(f->path) + 1);
        h = fnv1a(h, f->data, f->size);
    }
    return push_hash(L, h);
}

static const luaL_Reg host_functions[] = {
    {"sandbox", host_sandbox},         {"source", host_source},
    {"read_file", host_read_file},     {"write_atomic", host_write_atomic},
    {"mkdir_p", host_mkdir_p},         {"file_exists", host_file_exists},
    {"exe_dir", host_exe_dir},         {"realpath", host_realpath},
    {"cache_sizes", host_cache_sizes},
    {"cpu_supports", host_cpu_supports}, {"system", host_system},
    {"catch_interrupts", host_catch_interrupts}, {"interrupted", host_interrupted},
    {"cpus", host_cpus},               {"spawn", host_spawn},
    {"wait", host_wait},               {"kill", host_kill},
    {"hash", host_hash},               {"generator_hash", host_generator_hash},
    {"printable", host_printable},
    {NULL, NULL}};

/* ---- Loading the generator's modules from the embedded sources ------------------------------ */

/* package.searchers entry: require("rnnc.backend.scalar") loads generator/backend/scalar.lua. */
static int embedded_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (strncmp(name, "rnnc.", 5) != 0) {
        lua_pushfstring(L, "no embedded module '%s'", name);
        return 1;
    }
    luaL_Buffer path;
    luaL_buffinit(L, &path);
    luaL_addstring(&path, "generator/");
    for (const char *p = name + 5; *p; p++) luaL_addchar(&path, *p == '.' ? '/' : *p);
    luaL_addstring(&path, ".lua");
    luaL_pushresult(&path);                       /* name path */
    const char *file = lua_tostring(L, -1);
    for (const rnnc_embedded_file *f = rnnc_embedded_files; f->path; f++) {
        if (strcmp(f->path, file) == 0) {
            lua_pushfstring(L, "@%s", file);      /* name path chunkname */
            if (luaL_loadbuffer(L, f->data, f->size, lua_tostring(L, -1)) != LUA_OK)
                return lua_error(L);
            lua_insert(L, -3);                    /* name loader path chunkname */
            lua_pop(L, 1);                        /* name loader path */
            return 2;
        }
    }
    lua_pushfstring(L, "no embedded file '%s'", file);
    return 1;
}

/* Message handler: user errors (tables with __tostring) pass unchanged; anything else is a
 * bug and gets a traceback. */
static int message_handler(lua_State *L)
{
    if (!lua_isstring(L, 1) && luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1);                            /* err */
        return 1;
    }
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);                 /* err traceback */
    return 1;
}

/* Runs generator/main.lua's main(host, args) inside the state; returns the exit code. */
static int run(lua_State *L, int argc, char **argv)
{
    luaL_openlibs(L);
    install_clean_write(L);
    lua_getglobal(L, "package");                  /* package */
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");                  /* package */
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");                 /* package */
    lua_getfield(L, -1, "searchers");             /* package searchers */
    lua_pushcfunction(L, embedded_searcher);      /* package searchers searcher */
    lua_rawseti(L, -2, 2);                        /* package searchers (replaces the file one) */
    lua_pushnil(L);
    lua_rawseti(L, -2, 4);                        /* package searchers (no C modules) */
    lua_pushnil(L);
    lua_rawseti(L, -2, 3);                        /* package searchers */
    lua_pop(L, 2);                                /* (empty) */

    lua_pushcfunction(L, message_handler);        /* handler */
    lua_getglobal(L, "require");                  /* handler require */
    lua_pushliteral(L, "rnnc.main");              /* handler require "rnnc.main" */
    if (lua_pcall(L, 1, 1, 1) != LUA_OK) {        /* handler main | handler err */
        fprintf(stderr, "rnnc: internal error: %s\n", lua_tostring(L, -1));
        return 2;
    }
    luaL_newlib(L, host_functions);               /* handler main host */
    lua_pushliteral(L, RNNC_VERSION);
    lua_setfield(L, -2, "version");               /* handler main host */
    lua_newtable(L);                              /* handler main host args */
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);                    /* handler main host args */
    }
    if (lua_pcall(L, 2, 1, 1) == LUA_OK) {        /* handler code */
        int code = (int)lua_tointeger(L, -1);
        return code;
    }
    /* handler err */
    if (!lua_isstring(L, -1)) {                   /* a user error: plain message, its exit code */
        int code = 1;
        if (lua_getfield(L, -1, "exit_code") == LUA_TNUMBER) code = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);                            /* handler err */
        size_t len;
        const char *text = luaL_tolstring(L, -1, &len); /* handler err text */
        print_message(L, text, len);
        return code;
    }
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    fprintf(stderr, "rnnc: internal error (a bug in rnnc, please report it):\n");
    print_message(L, text, len);
    return 2;
}

int main(int argc, char **argv)
{
    lua_State *L = lua_newstate(limited_alloc, NULL);
    if (!L) {
        fprintf(stderr, "rnnc: cannot create the Lua state: out of memory\n");
        return 2;
    }
    int code = run(L, argc, argv);
    lua_close(L);
    return code;
}
