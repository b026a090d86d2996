"""What the op scans of every backend share: which ops batchcheck refuses to run (files, processes, network,
Python), and what a scan flags (constructs that can hang or hold state). Each backend walks its own model format
(`backends/*/scan.py`); no runtime is imported here."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
NETWORK_OPS = frozenset({"_Send", "_Recv", "_HostSend", "_HostRecv", "RpcCall", "RpcClient", "RpcServer",
                         "RpcServerStart", "RpcServerRegister", "RpcCheckStatus", "RpcGetValue",
                         "CollectiveReduce", "CollectiveReduceV2", "CollectiveGather", "CollectiveGatherV2",
                         "CollectiveBcastSend", "CollectiveBcastRecv", "CollectiveBcastSendV2",
                         "CollectiveBcastRecvV2", "CollectiveAllToAllV2", "CollectiveAllToAllV3"})
FILE_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "Save", "SaveV2", "SaveSlices", "Restore",
    "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "GenerateVocabRemapping", "LoadAndRemapMatrix", "RecordInput",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset",
    "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset", "SaveDataset", "SaveDatasetV2",
    "LoadDataset", "ExperimentalDatasetToTFRecord", "DatasetToTFRecord", "SnapshotDataset", "SnapshotDatasetV2",
    "CacheDataset", "CacheDatasetV2", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset",
})
# Readers, writers and summary writers of every version (TFRecordReaderV2, CreateSummaryFileWriter, WriteScalarSummary…)
FILE_OP_PATTERN = re.compile(r"(Reader|Writer)(V\d)?$|^Write\w*Summary$|^Reader\w+$|^(Create|Flush|Close)SummaryWriter")
# Checkpoint I/O that a SavedModel's or meta graph's own saver holds: allowed there and nowhere else.
CHECKPOINT_OPS = frozenset({"Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
                            "MergeV2Checkpoints"})
TRACED_SAVER = re.compile(r"__inference__traced_(save|restore)_\d+$")  # tf.saved_model.save's saver functions
PRINT_OPS = frozenset({"PrintV2"})
CONSOLE_STREAMS = ("stderr", "stdout", "log(info)", "log(warning)", "log(error)")

FLAGGED = (
    (re.compile(r"Queue"), "queue"),
    (re.compile(r"^(While|StatelessWhile|LoopCond)$"), "while loop"),
    (re.compile(r"^(VariableV2|Variable|VarHandleOp)$"), "variable"),
    (re.compile(r"HashTable|^LookupTable"), "hash table"),
    (re.compile(r"^Assert$"), "Assert (stops the check with an error if it fires)"),
)
@dataclass(frozen=True)
class Finding:
    """One node worth naming: its op, its name and where it was found."""
    op: str
    node: str
    where: str
    kind: str = ""


@dataclass
class ScanReport:
    """What the scan let through but flags: constructs that can hang or hold state (they run under the limits),
    and what it set aside (never run), for the report's notes."""
    flagged: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.flagged


def refusal_category(op: str) -> str | None:
    """'file', 'Python', 'network' for an op batchcheck refuses to run, 'custom-domain' for an ONNX op of a
    domain outside ONNX and onnxruntime (written `DOMAIN:OP`), None for any other op."""
    domain, _, bare = op.rpartition(":")
    if domain and bare:
        return refusal_category(bare) or "custom-domain"
    if op in PYTHON_OPS:
        return "Python"
    if op in NETWORK_OPS:
        return "network"
    if op in FILE_OPS or FILE_OP_PATTERN.search(op):
        return "file"
    return None


