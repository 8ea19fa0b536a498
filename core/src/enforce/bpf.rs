//! The head of the seccomp filter: the architecture check, the x32 check and a search tree over
//! system call numbers.
//!
//! seccompiler compiles an allow-list as one chain that compares the call's number with each
//! allowed call in turn, using five instructions per call. The base profile takes 1,066
//! instructions, and a call near the end of the chain runs several hundred of them. The kernel
//! JIT-compiles every instruction when the filter is installed, and then runs the filter once per
//! system call number to find the calls it always allows. A balanced tree over ranges of numbers
//! decides most calls in about seven comparisons instead. Calls whose arguments matter (clone's
//! flags, sendmsg on the supervisor's handoff socket) jump from the tree into seccompiler's chain,
//! compiled for those calls only.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{sock_filter, BpfProgram};

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
#[cfg(target_arch = "x86_64")]
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
pub(super) const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Offsets of `nr` and `arch` in struct seccomp_data.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// The audit architecture the kernel reports for native calls (`AUDIT_ARCH_*` in
/// linux/audit.h), on the architectures seccompiler supports.
pub(super) const NATIVE_ARCH: Option<u32> = if cfg!(target_arch = "x86_64") {
    Some(0xC000_003E)
} else if cfg!(target_arch = "aarch64") {
    Some(0xC000_00B7)
} else if cfg!(target_arch = "riscv64") {
    Some(0xC000_00F3)
} else {
    None
};

/// The kernel's limit on the length of one classic BPF program (BPF_MAXINSNS).
pub(super) const MAX_INSTRUCTIONS: usize = 4096;

/// On x86_64, system call numbers with this bit set use the x32 ABI. They report
/// AUDIT_ARCH_X86_64 too, so the architecture check alone lets them through.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Stands in for the offset of the argument chain in a leaf's jump until the tree is complete.
const CHAIN_PLACEHOLDER: u32 = u32::MAX;

/// The outcome for the calls in one range of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Allow,
    Mismatch,
    /// Continue to the argument chain.
    Chain,
}

/// Builds the filter for the audit architecture `arch`. A call from another architecture kills the process, as seccompiler's own
/// check does, and an x32 call fails with `errno`. A number in `allowed` is allowed, a number in
/// `conditioned` continues to `chain`, and every other number gets `mismatch`.
///
/// `chain` is a complete seccompiler program for the `conditioned` calls; it must be present
/// when `conditioned` is not empty.
pub(super) fn program(
    arch: u32,
    allowed: &BTreeSet<u32>,
    conditioned: &BTreeSet<u32>,
    chain: Option<BpfProgram>,
    mismatch: u32,
    errno: u32,
) -> BpfProgram {
    let mut program = head(arch, errno);

    let ranges = ranges(allowed, conditioned);
    let tree_start = program.len();
    program.reserve(tree_length(&ranges) + chain.as_ref().map_or(0, Vec::len));
    tree(&ranges, mismatch, &mut program);

    // The chain follows the tree: point each leaf's jump at it.
    let chain_start = program.len();
    for (index, instruction) in program.iter_mut().enumerate().skip(tree_start) {
        if instruction.code == BPF_JA && instruction.k == CHAIN_PLACEHOLDER {
            instruction.k = u32::try_from(chain_start - index - 1).expect("jump offsets fit in 32 bits");
        }
    }

    if !conditioned.is_empty() {
        program.extend(chain.expect("a chain is compiled whenever some calls have conditions"));
    }
    program
}

fn instruction(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Checks the architecture, denies x32 calls and loads the call's number for the tree.
fn head(arch: u32, errno: u32) -> BpfProgram {
    let mut head = vec![
        instruction(BPF_LD_W_ABS, 0, 0, ARCH_OFFSET),
        instruction(BPF_JEQ_K, 1, 0, arch),
        instruction(BPF_RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        instruction(BPF_LD_W_ABS, 0, 0, NR_OFFSET),
    ];
    #[cfg(target_arch = "x86_64")]
    head.extend([
        instruction(BPF_JSET_K, 0, 1, X32_SYSCALL_BIT),
        instruction(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA)),
    ]);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = errno;
    head
}

/// Splits every possible number (0 to u32::MAX) into ranges, each given as its first number and
/// its leaf. Neighbouring ranges have different leaves.
fn ranges(allowed: &BTreeSet<u32>, conditioned: &BTreeSet<u32>) -> Vec<(u32, Leaf)> {
    let mut leaves: BTreeMap<u32, Leaf> = allowed.iter().map(|&number| (number, Leaf::Allow)).collect();
    leaves.extend(conditioned.iter().map(|&number| (number, Leaf::Chain)));

    let mut ranges: Vec<(u32, Leaf)> = Vec::new();
    let mut push = |start: u64, leaf: Leaf| {
        if ranges.last().map(|&(_, last)| last) != Some(leaf) {
            ranges.push((u32::try_from(start).expect("range starts are system call numbers"), leaf));
        }
    };
    let mut uncovered = 0u64;
    for (&number, &leaf) in &leaves {
        if u64::from(number) > uncovered {
            push(uncovered, Leaf::Mismatch);
        }
        push(u64::from(number), leaf);
        uncovered = u64::from(number) + 1;
    }
    if uncovered <= u64::from(u32::MAX) {
        push(uncovered, Leaf::Mismatch);
    }
    ranges
}

/// Emits a balanced search over `ranges`, which must not be empty, at the end of `program`. Each
/// comparison sends numbers at or above the middle range's start to the right half, and the left
/// half follows it directly.
fn tree(ranges: &[(u32, Leaf)], mismatch: u32, program: &mut BpfProgram) {
    if let [(_, leaf)] = ranges {
        program.push(match leaf {
            Leaf::Allow => instruction(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
            Leaf::Mismatch => instruction(BPF_RET_K, 0, 0, mismatch),
            Leaf::Chain => instruction(BPF_JA, 0, 0, CHAIN_PLACEHOLDER),
        });
        return;
    }

    let middle = ranges.len() / 2;
    let (left, right) = ranges.split_at(middle);
    let boundary = right[0].0;
    let left_length = tree_length(left);
    match u8::try_from(left_length) {
        Ok(skip) => program.push(instruction(BPF_JGE_K, skip, 0, boundary)),
        // Conditional jumps reach 255 instructions at most: hop over the left half unconditionally.
        Err(_) => program.extend([
            instruction(BPF_JGE_K, 0, 1, boundary),
            instruction(BPF_JA, 0, 0, u32::try_from(left_length).expect("jump offsets fit in 32 bits")),
        ]),
    }

    tree(left, mismatch, program);
    tree(right, mismatch, program);
}

/// Returns the number of instructions [`tree`] emits for `ranges`.
fn tree_length(ranges: &[(u32, Leaf)]) -> usize {
    if ranges.len() == 1 {
        return 1;
    }
    let (left, right) = ranges.split_at(ranges.len() / 2);
    let left_length = tree_length(left);
    let comparison = if left_length <= usize::from(u8::MAX) { 1 } else { 2 };
    comparison + left_length + tree_length(right)
}

/// Runs a classic BPF program on a seccomp_data, for tests. It supports the instructions that
/// seccompiler and this module emit.
#[cfg(test)]
pub(super) fn run(program: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for arg in args {
        data.extend_from_slice(&arg.to_ne_bytes());
    }

    let mut accumulator = 0u32;
    let mut pc = 0usize;
    loop {
        let instruction = &program[pc];
        pc += 1;
        let jump = |taken: bool| usize::from(if taken { instruction.jt } else { instruction.jf });
        match instruction.code {
            BPF_LD_W_ABS => {
                let offset = instruction.k as usize;
                accumulator = u32::from_ne_bytes(data[offset..offset + 4].try_into().unwrap());
            }
            BPF_JA => pc += instruction.k as usize,
            BPF_JEQ_K => pc += jump(accumulator == instruction.k),
            BPF_JGE_K => pc += jump(accumulator >= instruction.k),
            code if code == (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16 => {
                pc += jump(accumulator > instruction.k)
            }
            code if code == (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16 => {
                pc += jump(accumulator & instruction.k != 0)
            }
            code if code == (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16 => accumulator &= instruction.k,
            BPF_RET_K => return instruction.k,
            code => panic!("instruction {code:#x} at {} is not supported by the test interpreter", pc - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERRNO: u32 = libc::ENOSYS as u32;
    /// Differs from the x32 check's return, so a test shows which part decided a call.
    const MISMATCH: u32 = libc::SECCOMP_RET_LOG;
    const ARCH: u32 = NATIVE_ARCH.unwrap();

    fn set(numbers: &[u32]) -> BTreeSet<u32> {
        numbers.iter().copied().collect()
    }

    #[test]
    fn ranges_merge_neighbours_and_cover_every_number() {
        let ranges = ranges(&set(&[0, 1, 2, 7, u32::MAX]), &set(&[3]));
        assert_eq!(
            ranges,
            vec![
                (0, Leaf::Allow),
                (3, Leaf::Chain),
                (4, Leaf::Mismatch),
                (7, Leaf::Allow),
                (8, Leaf::Mismatch),
                (u32::MAX, Leaf::Allow)
            ]
        );
    }

    #[test]
    fn tree_decides_each_number_by_its_range() {
        let allowed: BTreeSet<u32> = (0..400).filter(|number| number % 3 != 0).collect();
        let program = program(ARCH, &allowed, &BTreeSet::new(), None, MISMATCH, ERRNO);

        for nr in (0..1000).chain([u32::MAX - 1, u32::MAX, 0x8000_0000]) {
            let expected = if allowed.contains(&nr) { libc::SECCOMP_RET_ALLOW } else { MISMATCH };
            #[cfg(target_arch = "x86_64")]
            let expected = if nr & X32_SYSCALL_BIT != 0 { libc::SECCOMP_RET_ERRNO | ERRNO } else { expected };
            assert_eq!(run(&program, nr, ARCH, [0; 6]), expected, "system call {nr}");
        }
    }

    #[test]
    fn long_left_halves_are_jumped_over() {
        // Every other number allowed: hundreds of ranges, so the top comparisons are far apart.
        let allowed: BTreeSet<u32> = (0..1200).step_by(2).collect();
        let program = program(ARCH, &allowed, &BTreeSet::new(), None, MISMATCH, ERRNO);
        assert!(program.iter().any(|instruction| instruction.code == BPF_JA));

        for nr in 0..1300 {
            let expected = if allowed.contains(&nr) { libc::SECCOMP_RET_ALLOW } else { MISMATCH };
            assert_eq!(run(&program, nr, ARCH, [0; 6]), expected, "system call {nr}");
        }
    }

    #[test]
    fn other_architectures_are_killed() {
        let program = program(ARCH, &set(&[1]), &BTreeSet::new(), None, MISMATCH, ERRNO);
        assert_eq!(run(&program, 1, 0x4000_0003, [0; 6]), libc::SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn conditioned_calls_continue_to_the_chain() {
        let chain = vec![instruction(BPF_RET_K, 0, 0, libc::SECCOMP_RET_TRACE)];
        let program = program(ARCH, &set(&[1, 2, 300]), &set(&[5, 299]), Some(chain), MISMATCH, ERRNO);

        assert_eq!(run(&program, 5, ARCH, [0; 6]), libc::SECCOMP_RET_TRACE);
        assert_eq!(run(&program, 299, ARCH, [0; 6]), libc::SECCOMP_RET_TRACE);
        assert_eq!(run(&program, 300, ARCH, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&program, 6, ARCH, [0; 6]), MISMATCH);
    }

    #[test]
    fn nothing_allowed_is_one_leaf() {
        let program = program(ARCH, &BTreeSet::new(), &BTreeSet::new(), None, libc::SECCOMP_RET_USER_NOTIF, ERRNO);
        assert_eq!(program.len(), head(ARCH, ERRNO).len() + 1);
        assert_eq!(run(&program, 0, ARCH, [0; 6]), libc::SECCOMP_RET_USER_NOTIF);
    }
}
