using System.Runtime.InteropServices;

namespace Llada.Reporting;

/// <summary>
/// CPU time of the calling thread (Linux CLOCK_THREAD_CPUTIME_ID): unlike wall time it is not inflated by waiting for
/// a busy core, so one-thread benchmarks on a shared machine stay comparable. Unavailable elsewhere.
/// </summary>
public static partial class ThreadCpuClock
{
    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    private const int ClockThreadCpuTimeId = 3;

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    /// <summary>Whether <see cref="Nanoseconds"/> works on this OS.</summary>
    public static bool IsAvailable => OperatingSystem.IsLinux();

    /// <summary>CPU nanoseconds the calling thread has used so far.</summary>
    public static long Nanoseconds()
    {
        if (!IsAvailable) throw new PlatformNotSupportedException("the thread CPU clock is read with Linux clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        if (ClockGetTime(ClockThreadCpuTimeId, out var t) != 0) throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }
}
