using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Llada.Numerics;

/// <summary>
/// Persistent worker threads for the numerics kernels. <see cref="For"/> hands out work items from an atomic
/// counter to the caller plus up to <see cref="Parallelism.ThreadCount"/> - 1 workers; the workers spin briefly
/// after a job so back-to-back small kernels do not pay a thread wake-up each, then sleep on a semaphore.
/// The caller works too and, once every item is handed out, closes the job: it then waits only for workers that
/// actually joined (are running an item), never for one that has not been scheduled yet, which on a busy
/// machine can take milliseconds. No allocation per call: the body is a function pointer and the state a
/// pointer to the caller's stack.
/// </summary>
internal static unsafe class WorkerPool
{
    private sealed class Worker
    {
        public int Requested;   // bumped by the caller for each job this worker should join
        public int Sleeping;    // 1 while the worker is (about to be) blocked on Wake
        public readonly SemaphoreSlim Wake = new(0);
    }

    // How long an idle worker polls for the next job before blocking; short, because the CPU is shared.
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000; // 50 µs

    private static readonly Lock Gate = new();
    private static Worker[] _workers = [];

    private static delegate*<void*, int, void> _body;
    private static void* _context;
    private static int _count;
    private static int _next;
    // Workers inside the current job, plus Closed once the caller has shut it (nobody may join after that).
    private static int _state = Closed;
    private const int Closed = 1 << 30;
    private static ExceptionDispatchInfo? _failure;

    [ThreadStatic] private static bool t_inJob;

    /// <summary>
    /// Runs <paramref name="body"/>(context, i) for every i in [0, count), in any order, possibly concurrently.
    /// Nested calls and calls made while another thread owns the pool run inline on the calling thread.
    /// </summary>
    public static void For(int count, delegate*<void*, int, void> body, void* context)
    {
        int threads = Math.Min(Parallelism.ThreadCount, count);
        if (threads <= 1 || t_inJob || !Gate.TryEnter())
        {
            for (int i = 0; i < count; i++) body(context, i);
            return;
        }
        ExceptionDispatchInfo? failure;
        try
        {
            EnsureWorkers(threads - 1);
            _body = body;
            _context = context;
            _count = count;
            _next = 0;
            _failure = null;
            Volatile.Write(ref _state, 0); // open: publishes the fields above to workers that join
            for (int w = 0; w < threads - 1; w++)
            {
                Worker worker = _workers[w];
                Interlocked.Increment(ref worker.Requested);
                if (Interlocked.CompareExchange(ref worker.Sleeping, 0, 1) == 1) worker.Wake.Release();
            }
            t_inJob = true;
            try { Drain(); }
            finally { t_inJob = false; }
        }
        finally
        {
            // Every item is taken (or setup failed): shut the job and wait for the workers still finishing theirs.
            Interlocked.Or(ref _state, Closed);
            var spin = new SpinWait();
            while (Volatile.Read(ref _state) != Closed) spin.SpinOnce(sleep1Threshold: -1);
            failure = _failure;
            _body = null;
            _context = null;
            Gate.Exit();
        }
        failure?.Throw();
    }

    private static void Drain()
    {
        try
        {
            int i;
            while ((i = Interlocked.Increment(ref _next) - 1) < _count) _body(_context, i);
        }
        catch (Exception e)
        {
            _failure ??= ExceptionDispatchInfo.Capture(e);
            Volatile.Write(ref _next, _count); // stop handing out work
        }
    }

    private static bool TryJoin()
    {
        while (true)
        {
            int state = Volatile.Read(ref _state);
            if ((state & Closed) != 0) return false;
            if (Interlocked.CompareExchange(ref _state, state + 1, state) == state) return true;
        }
    }

    private static void EnsureWorkers(int needed)
    {
        if (_workers.Length >= needed) return;
        var grown = new Worker[needed];
        Array.Copy(_workers, grown, _workers.Length);
        for (int w = _workers.Length; w < needed; w++)
        {
            var worker = new Worker();
            grown[w] = worker;
            var thread = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"Llada numerics {w + 1}" };
            thread.Start();
        }
        _workers = grown;
    }

    private static void WorkerLoop(Worker self)
    {
        t_inJob = true;
        int seen = 0;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            while (Volatile.Read(ref self.Requested) == seen)
            {
                if (Stopwatch.GetTimestamp() - start < SpinTicks) { Thread.SpinWait(20); continue; }
                Interlocked.Exchange(ref self.Sleeping, 1);
                if (Volatile.Read(ref self.Requested) != seen && Interlocked.CompareExchange(ref self.Sleeping, 0, 1) == 1)
                    break; // a job arrived between the check and going to sleep; nobody will release us
                self.Wake.Wait();
                break;
            }
            seen++;
            if (!TryJoin()) continue; // woke after the job was over (or a later one is not open yet)
            Drain();
            Interlocked.Decrement(ref _state);
        }
    }
}
