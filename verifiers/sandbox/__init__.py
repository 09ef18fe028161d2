"""The code sandbox's moving parts (see `verifiers.code` for what it covers):

- `server`: the fork server, one per client process: scheduling, streams, deadlines, answers;
- `isolation`: the kernel mechanisms (namespaces, cgroups, mounts, rlimits, privileges);
- `seccomp`: the system-call filter;
- `harness`: what runs inside a run, around the untrusted program;
- `guard`: the comparison guard the harness builds into the tests (loaded by the harness).

The fork server loads these modules by path under private names (`_synth_sandbox_<name>`),
with no `verifiers` package on its path; the client and the tests import them from here.
"""
