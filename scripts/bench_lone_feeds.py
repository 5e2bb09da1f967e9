import http.client, time, sys, random, os
port, pid, rate, n = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
users = [l.split()[0] for l in open("/work/main/data/amazon_beauty/sequences.txt").read().splitlines()]
rng = random.Random(0)
c = http.client.HTTPConnection("127.0.0.1", port)
def ticks():
    f = open(f"/proc/{pid}/stat").read().split()
    return int(f[13]), int(f[14])
def one():
    c.request("GET", f"/v1/users/{rng.choice(users)}/recommendations?k=10"); r = c.getresponse(); r.read(); assert r.status == 200
for _ in range(200): one()
u0, s0 = ticks(); lat = []
t0 = time.perf_counter()
for i in range(n):
    target = t0 + i / rate
    while time.perf_counter() < target: time.sleep(max(0, target - time.perf_counter()))
    a = time.perf_counter(); one(); lat.append(time.perf_counter() - a)
u1, s1 = ticks()
lat.sort()
hz = os.sysconf("SC_CLK_TCK")
print(f"user {(u1-u0)/hz/n*1e6:.0f} us/feed, sys {(s1-s0)/hz/n*1e6:.0f} us/feed, p50 {lat[n//2]*1e3:.2f} ms")
