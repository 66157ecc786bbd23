using Llada.Numerics;

namespace Llada.Tests.Numerics;

[Collection(nameof(NumericsGlobalState))]
public unsafe class WorkerPoolTests
{
    private static void Count(void* context, int i) => Interlocked.Increment(ref ((int*)context)[i]);

    private static void Fail(void* context, int i)
    {
        if (i == 5) throw new InvalidOperationException("item 5");
    }

    /// <summary>
    /// Thousands of back-to-back jobs of every size (workers join late, leave early, or never make it): every item
    /// runs exactly once per job and nothing runs after For returns.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Every_item_runs_exactly_once_across_many_short_jobs(int threads)
    {
        int saved = Parallelism.ThreadCount;
        var counts = new int[64];
        try
        {
            Parallelism.ThreadCount = threads;
            fixed (int* c = counts)
                for (int job = 0; job < 3000; job++)
                {
                    int n = 1 + job % 64;
                    WorkerPool.For(n, &Count, c);
                    for (int i = 0; i < n; i++)
                    {
                        Assert.Equal(1, Volatile.Read(ref counts[i]));
                        counts[i] = 0;
                    }
                }
            Thread.Sleep(5); // a straggler running a stale job would bump a counter now
            Assert.All(counts, x => Assert.Equal(0, x));
        }
        finally { Parallelism.ThreadCount = saved; }
    }

    [Fact]
    public void An_item_exception_reaches_the_caller_and_the_pool_keeps_working()
    {
        int saved = Parallelism.ThreadCount;
        try
        {
            Parallelism.ThreadCount = 2;
            var e = Assert.Throws<InvalidOperationException>(() => WorkerPool.For(20, &Fail, null));
            Assert.Equal("item 5", e.Message);
            var counts = new int[10];
            fixed (int* c = counts) WorkerPool.For(10, &Count, c);
            Assert.All(counts, x => Assert.Equal(1, x));
        }
        finally { Parallelism.ThreadCount = saved; }
    }
}
