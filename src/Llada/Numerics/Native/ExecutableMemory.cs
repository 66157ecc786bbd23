using System.Runtime.InteropServices;

namespace Llada.Numerics.Native;

/// <summary>
/// Pages holding emitted machine code, W^X: mapped read-write, filled, then flipped to read-execute, never writable
/// and executable at once. Lives for the process (the kernels are created once), so there is no unmapping, except
/// of pages that could not be made executable.
/// </summary>
internal static unsafe partial class ExecutableMemory
{
    /// <summary>Copies <paramref name="code"/> into fresh executable pages; throws if the OS refuses (e.g. SELinux execmem).</summary>
    public static byte* Create(ReadOnlySpan<byte> code)
    {
        nuint size = (nuint)((code.Length + 4095) & ~4095);
        byte* pages;
        if (OperatingSystem.IsWindows())
        {
            pages = (byte*)VirtualAlloc(null, size, MemCommit | MemReserve, PageReadWrite);
            if (pages == null) throw new InvalidOperationException($"VirtualAlloc failed (error {Marshal.GetLastPInvokeError()})");
            code.CopyTo(new Span<byte>(pages, code.Length));
            if (!VirtualProtect(pages, size, PageExecuteRead, out _))
            {
                int error = Marshal.GetLastPInvokeError();
                VirtualFree(pages, 0, MemRelease);
                throw new InvalidOperationException($"VirtualProtect to execute-read failed (error {error})");
            }
        }
        else if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            int anonymous = OperatingSystem.IsMacOS() ? 0x1000 : 0x20;
            pages = (byte*)mmap(null, size, ProtRead | ProtWrite, MapPrivate | anonymous, -1, 0);
            if (pages == (byte*)-1) throw new InvalidOperationException($"mmap failed (errno {Marshal.GetLastPInvokeError()})");
            code.CopyTo(new Span<byte>(pages, code.Length));
            if (mprotect(pages, size, ProtRead | ProtExec) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                munmap(pages, size);
                throw new InvalidOperationException($"mprotect to read-execute failed (errno {errno}; is executable memory forbidden here, e.g. SELinux deny_execmem?)");
            }
        }
        else throw new PlatformNotSupportedException("executable memory is implemented for Linux, macOS and Windows");
        return pages;
    }

    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2;
    private const uint MemCommit = 0x1000, MemReserve = 0x2000, MemRelease = 0x8000, PageReadWrite = 0x04, PageExecuteRead = 0x20;

    [LibraryImport("libc", SetLastError = true)]
    private static partial void* mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mprotect(void* address, nuint length, int protection);

    [LibraryImport("libc")]
    private static partial int munmap(void* address, nuint length);

    [LibraryImport("kernel32", SetLastError = true)]
    private static partial void* VirtualAlloc(void* address, nuint size, uint allocationType, uint protection);

    [LibraryImport("kernel32", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool VirtualProtect(void* address, nuint size, uint newProtection, out uint oldProtection);

    [LibraryImport("kernel32")]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool VirtualFree(void* address, nuint size, uint freeType);
}
