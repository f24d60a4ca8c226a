"""Hierarchical models built on the newer token mixers: neighbourhood, routing, multi-axis and
additive attention, gated and large-kernel convolution, spectral filters, state spaces.

Each factory cites its reference implementation; where our generic block cannot reproduce a
detail exactly, the model's ``notes`` say how the spec departs from it.
"""

from __future__ import annotations

from search_space.costs import COUNTER_MODULE_HOOKS
from search_space.spec import ArchSpec, Block, Op, Stage
from search_space.zoo._build import block, op, spec, stage
from search_space.zoo.pyramids import pyramid, swin_like
from search_space.zoo.registry import add, paper, timm, unpublished

DINAT = "Dilated Neighborhood Attention Transformer"
HORNET = "HorNet: Efficient High-Order Spatial Interactions with Recursive Gated Convolutions"
VAN = "Visual Attention Network"
MAXVIT = "MaxViT: Multi-Axis Vision Transformer"
MAMBAOUT = "MambaOut: Do We Really Need Mamba for Vision?"
BIFORMER = "BiFormer: Vision Transformer with Bi-Level Routing Attention"
CASVIT = (
    "CAS-ViT: Convolutional Additive Self-attention Vision Transformers for Efficient Mobile "
    "Applications"
)
SPECTFORMER = "SpectFormer: Frequency and Attention is what you need in a Vision Transformer"
VCMAMBA = (
    "VCMamba: Bridging Convolutions with Multi-Directional Mamba for Efficient Visual "
    "Representation"
)

# a block that passes its input through unchanged: a place-holder where a stage only exists to
# carry a downsampler (an extra stem convolution at stride 1)
PASS = Block(op("identity"), op("none"), norm="none", residual=False)


def _extra_conv(width: int, norm: str) -> Stage:
    """A stride-1 3x3 convolution (with a norm after it) as a stage of its own."""
    return stage(width, op("conv", kernel=3, stride=1, norm=norm), [PASS])


@add(
    "dinat_t",
    paper=DINAT,
    families=("M03", "M04"),
    macro=("MA2", "MA8"),
    published=paper(28, 4.3, "SHI-Labs DiNAT.md / NAT README (DiNAT-T = NAT-T size)"),
)
def dinat_t() -> ArchSpec:
    # SHI-Labs dinat.py: kernel 7, per-layer dilations; MLP 3x; 3x3/s2 conv + LN downsampling
    dilations = ([1, 8, 1], [1, 4, 1, 4], [1, 2] * 9, [1] * 5)
    return pyramid(
        op(
            "conv_stack",
            widths=[32],
            strides=[2, 2],
            kernels=[3, 3],
            norm="layernorm",
            inner_norm=False,
            final_act=False,
            bias=True,
        ),
        (3, 4, 18, 5),
        (64, 128, 256, 512),
        op("conv", kernel=3, norm="layernorm"),
        lambda i, j: block(
            op("neighborhood_attention", kernel=7, dilation=dilations[i][j], head_dim=32),
            op("mlp", ratio=3.0),
        ),
        op("classifier"),
    )


@add(
    "hornet_t",
    paper=HORNET,
    families=("M17",),
    macro=("MA2",),
    published=paper(22, 4.0, "raoyongming/HorNet README model zoo (HorNet-T 7x7: 22M, 4.0G)"),
)
def hornet_t() -> ArchSpec:
    orders = (2, 3, 4, 5)
    return pyramid(
        op("patch_embed", patch_size=4, norm="layernorm"),
        (2, 3, 18, 2),
        (64, 128, 256, 512),
        op("conv", kernel=2, norm="layernorm", norm_position="pre"),
        lambda i, j: block(
            op("gnconv", order=orders[i], kernel=7, scale=1 / 3),
            op("mlp", ratio=4.0),
            layer_scale=1e-6,
        ),
        op("classifier"),
    )


@add(
    "van_b2",
    paper=VAN,
    families=("M16", "M17"),
    macro=("MA2",),
    published=paper(26.6, 5.0, "VAN-Classification README (VAN-Base = VAN-B2)"),
    notes="VAN's per-stage LayerNorm is kept only after the last stage (the head's norm)",
)
def van_b2() -> ArchSpec:
    ratios = (8.0, 8.0, 4.0, 4.0)
    return pyramid(
        op("patch_embed", patch_size=7, stride=4, padding=3, norm="batchnorm"),
        (3, 3, 12, 3),
        (64, 128, 320, 512),
        op("conv", kernel=3, norm="batchnorm"),
        lambda i, j: block(
            op("lka", kernel=21),
            op("conv_ffn", ratio=ratios[i], kernel=3),
            norm="batchnorm",
            layer_scale=1e-2,
        ),
        op("classifier", norm_position="pre_pool"),
    )


@add(
    "mambaout_t",
    paper=MAMBAOUT,
    families=("M15", "M17"),
    macro=("MA2",),
    published=timm("mambaout_tiny", 26.55, 4.49),
)
def mambaout_t() -> ArchSpec:
    # timm mambaout.py: conv stem 3 -> 48 -> 96 with LN (GELU between), conv 3x3/s2 + LN
    # downsampling, Gated CNN blocks (8/3 expansion, 7x7 conv on all d channels), MLP head 4x
    return pyramid(
        op(
            "conv_stem",
            num_convs=2,
            kernel=3,
            hidden=48,
            norm="layernorm",
            act="gelu",
            final_act=False,
        ),
        (3, 3, 9, 3),
        (96, 192, 384, 576),
        op("conv", kernel=3, norm="layernorm"),
        lambda i, j: block(op("gated_cnn", ratio=8 / 3, kernel=7, conv_ratio=1.0), op("none")),
        op("classifier", hidden=4 * 576, hidden_act="gelu"),
    )


@add(
    "maxvit_t",
    paper=MAXVIT,
    families=("M02", "M04", "M15"),
    macro=("MA2", "MA5"),
    published=timm("maxvit_tiny_tf_224", 30.92, 5.6),
    notes=(
        "the stem's second 3x3 conv is a stride-1 conv downsampler of an extra pass-through "
        "stage; MBConv, block attention and grid attention are three blocks of one stage"
    ),
)
def maxvit_t() -> ArchSpec:
    depths, widths = (2, 2, 5, 2), (64, 128, 256, 512)
    stages = [_extra_conv(64, "none")]
    for d, w in zip(depths, widths, strict=True):
        mb = op("mbconv", expand=4.0, kernel=3, se_ratio=0.25)
        attn = [
            block(op("window_attention", window=7, head_dim=32), op("mlp", ratio=4.0)),
            block(op("grid_attention", grid_size=7, head_dim=32), op("mlp", ratio=4.0)),
        ]
        blocks = list(attn)
        for _ in range(d - 1):
            blocks += [block(mb, op("none"), norm="batchnorm"), *attn]
        stages.append(stage(w, mb, blocks))
    return spec(
        op("conv_stem", num_convs=1, kernel=3, norm="batchnorm", act="gelu"),
        stages,
        op("classifier", hidden=512, hidden_act="tanh"),
    )


def _cpe(kernel: int = 3) -> Block:
    """Conditional position encoding as its own residual block: ``x + dwconv(x)``."""
    return block(op("dwconv", kernel=kernel), op("none"), norm="none")


@add(
    "biformer_s",
    paper=BIFORMER,
    families=("M06",),
    macro=("MA2",),
    published=paper(25.5, 4.5, "BiFormer README (BiFormer-S)"),
    notes=(
        "each BiFormer block is two spec blocks: the 3x3 conditional position encoding "
        "(x + dwconv(x)) and the attention + MLP block; stage 4's full attention with LePE is "
        "routing attention over all 49 regions"
    ),
)
def biformer_s() -> ArchSpec:
    # rayleizhu/BiFormer biformer.py (biformer_small): n_win 7, top-k per stage [1, 4, 16, all],
    # head_dim 32, MLP 3x, LCE 5x5 on V, 3x3/s2 conv + BN downsampling, BN before pooling
    topk = (1, 4, 16, 49)

    def make(i: int, j: int) -> Block:
        return (
            _cpe()
            if j % 2 == 0
            else block(
                op("routing_attention", n_win=7, topk=topk[i], head_dim=32, lepe_kernel=5),
                op("mlp", ratio=3.0),
            )
        )

    return pyramid(
        op(
            "conv_stem",
            num_convs=2,
            kernel=3,
            hidden=32,
            norm="batchnorm",
            act="gelu",
            final_act=False,
        ),
        (8, 8, 36, 8),
        (64, 128, 256, 512),
        op("conv", kernel=3, norm="batchnorm"),
        make,
        op("classifier", norm="batchnorm", norm_position="pre_pool"),
    )


@add(
    "casvit_m",
    paper=CASVIT,
    families=("M08", "M15"),
    macro=("MA2",),
    published=paper(12.42, None, "CAS-ViT MODEL_ZOO.md (CAS-ViT-M, with distillation head)"),
    notes="MACs: the repository publishes none for CAS-ViT-M; the paper's table was not checked",
)
def casvit_m() -> ArchSpec:
    # Tianfang-Zhang/CAS-ViT rcvit.py (rcvit_m): every block is x + LocalIntegration(x),
    # x + CATM(BN(x)), x + MLP(BN(x)); BN everywhere; distillation head averaged at inference
    def make(i: int, j: int) -> Block:
        if j % 2 == 0:
            return block(
                op("local_integration", ratio=1.0, kernel=3, act="gelu"), op("none"), norm="none"
            )
        return block(op("additive_attention", kernel=3), op("mlp", ratio=4.0), norm="batchnorm")

    return pyramid(
        op("conv_stem", num_convs=2, kernel=3, norm="batchnorm", act="relu"),
        (6, 6, 12, 6),
        (64, 96, 192, 384),
        op("conv", kernel=3, norm="batchnorm"),
        make,
        op("classifier", norm="batchnorm", norm_position="pre_pool", distill=True),
    )


@add(
    "vcmamba_b",
    paper=VCMAMBA,
    families=("M19", "M15"),
    macro=("MA2", "MA4"),
    published=unpublished(why="the VCMamba abstract gives top-1 only; params not checked"),
    notes=(
        "the multi-directional PlainMamba layers are bidirectional selective scans (state 16) "
        "over the row-major grid; the conv blocks are 1x1-BN-3x3dw-GELU-1x1 local integration "
        "blocks with layer scale 1e-5"
    ),
)
def vcmamba_b() -> ArchSpec:
    # Wertyuui345/VCMamba mambacnn.py (VCMamba_EfficientFormer_B): EfficientFormer-L3 shape,
    # the last 4 blocks of stage 4 are Mamba layers
    depths = (4, 4, 12, 6)

    def make(i: int, j: int) -> Block:
        if i == 3 and j >= depths[3] - 4:
            return block(op("selective_ssm", state=16, expand=2, bidirectional=True), op("none"))
        return block(
            op("local_integration", ratio=4.0, kernel=3, act="gelu"),
            op("none"),
            norm="none",
            layer_scale=1e-5,
        )

    return pyramid(
        op("conv_stem", num_convs=2, kernel=3, norm="batchnorm", act="relu"),
        depths,
        (64, 128, 320, 512),
        op("conv", kernel=3, norm="batchnorm"),
        make,
        op("classifier", norm_position="pre_pool"),
    )


@add(
    "spectformer_h_s",
    paper=SPECTFORMER,
    families=("M10", "M01", "M20"),
    macro=("MA2", "MA4"),
    published=paper(
        22.2,
        3.9,
        "SpectFormers hierarchical_architecture README (SpectFormer-H-S)",
        counter=COUNTER_MODULE_HOOKS,
        counter_evidence=(
            "SpectFormers hierarchical_architecture/main.py imports "
            "util.flops_counter.get_model_complexity_info, and its (commented-out) call has "
            "ptflops's signature: a module-hook counter"
        ),
    ),
    notes=(
        "the stem's two stride-1 3x3 convs are conv downsamplers (BN, no ReLU) of two "
        "pass-through stages; the per-stage LayerNorms after stages 1-3 are left out"
    ),
)
def spectformer_h_s() -> ArchSpec:
    # badripatro/SpectFormers hierarchical spectformer.py (spectformer_s): spectral gating in
    # stages 1-2, attention (head_dim 32) in 3-4, PVTv2 conv FFN, 3x3/s2 conv + LN downsampling;
    # post network: one class-attention block whose class token is the mean of the 7x7 tokens,
    # then LN, head on the class token plus the token-labelling head (0.5 * max over tokens)
    depths, widths, ratios = (3, 4, 6, 3), (64, 128, 320, 448), (8.0, 8.0, 4.0, 4.0)
    stages = [_extra_conv(32, "batchnorm"), _extra_conv(32, "batchnorm")]
    for i, (d, w, r) in enumerate(zip(depths, widths, ratios, strict=True)):
        mixer = op("global_filter") if i < 2 else op("attention", head_dim=32)
        stages.append(
            stage(
                w,
                op("conv", kernel=3, norm="layernorm"),
                [block(mixer, op("conv_ffn", ratio=r, kernel=3))] * d,
            )
        )
    post = block(op("class_attention", head_dim=32), op("mlp", ratio=4.0), tokens="prefix")
    stages.append(stage(448, op("embed", class_token="mean"), [post]))
    return spec(
        op("conv_stem", num_convs=1, kernel=7, norm="batchnorm", act="relu", bias=False),
        stages,
        op("classifier", pool="cls", norm_position="pre_pool", token_label=True),
    )


VOLO = "VOLO: Vision Outlooker for Visual Recognition"


@add(
    "volo_d1",
    paper=VOLO,
    families=("M21", "M01", "M20"),
    macro=("MA4",),
    published=timm("volo_d1_224", 26.63, 6.94),
    notes=(
        "the 4x4/s4 patch projection after the conv stem and the 2x2/s2 downsampling are conv "
        "downsamplers of pass-through stages, so the learned position embedding (an 'embed' "
        "downsampler) enters after the downsampling as in VOLO; timm's three transformer "
        "stages (4, 8, 2 blocks, no downsampling between) are one stage of 14 blocks"
    ),
)
def volo_d1() -> ArchSpec:
    # timm volo.py (volo_d1_224): conv stem 7x7/s2 + two 3x3/s1 (64 wide, BN + ReLU, no bias),
    # 4x4/s4 projection to 192 (28x28); 4 outlookers (K 3, stride 2, 6 heads, MLP 3x, no qkv
    # bias); 2x2/s2 conv to 384 (14x14); learned positions; 14 transformer blocks (12 heads, MLP
    # 3x, no qkv bias); learned class token, 2 class-attention blocks (class token only, MLP
    # 3x); LN; head on the class token + 0.5 * max over tokens of the token-labelling head
    outlooker = block(
        op("outlook_attention", kernel=3, stride=2, head_dim=32, qkv_bias=False),
        op("mlp", ratio=3.0),
    )
    transformer = block(op("attention", head_dim=32, qkv_bias=False), op("mlp", ratio=3.0))
    class_block = block(
        op("class_attention", head_dim=32, qkv_bias=False), op("mlp", ratio=3.0), tokens="prefix"
    )
    stages = [
        stage(64, op("none"), [PASS]),
        stage(192, op("conv", kernel=4, stride=4), [outlooker] * 4),
        stage(384, op("conv", kernel=2, stride=2), [PASS]),
        stage(384, op("embed", class_token="none", pos_embed="learned"), [transformer] * 14),
        stage(384, op("embed", class_token="learned"), [class_block] * 2),
    ]
    return spec(
        op(
            "conv_stack",
            widths=[64, 64],
            strides=[2, 1, 1],
            kernels=[7, 3, 3],
            norm="batchnorm",
            act="relu",
            bias=False,
        ),
        stages,
        op("classifier", pool="cls", norm_position="pre_pool", token_label=True),
    )


INTERNIMAGE = (
    "InternImage: Exploring Large-Scale Vision Foundation Models with Deformable Convolutions"
)
FLATTEN = "FLatten Transformer: Vision Transformer using Focused Linear Attention"
LITV2 = "Fast Vision Transformers with HiLo Attention"


@add(
    "internimage_t",
    paper=INTERNIMAGE,
    families=("M18",),
    macro=("MA2",),
    published=paper(30, 5.0, "OpenGVLab/InternImage README (InternImage-T, 224: 30M, 5G)"),
    notes="the 1x1 conv head (to 1.5x width, before pooling) is a pre-logits layer after pooling",
)
def internimage_t() -> ArchSpec:
    # OpenGVLab/InternImage internimage_t_1k_224.yaml: DCNv3 groups [4, 8, 16, 32], MLP 4x,
    # offset_scale 1.0, conv stem 3 -> 32 -> 64 (LN, GELU), 3x3/s2 conv + LN downsampling
    groups = (4, 8, 16, 32)
    return pyramid(
        op("conv_stem", num_convs=2, kernel=3, norm="layernorm", act="gelu", final_act=False),
        (4, 4, 18, 4),
        (64, 128, 256, 512),
        op("conv", kernel=3, norm="layernorm"),
        lambda i, j: block(
            op("deformable_conv", groups=groups[i], kernel=3, offset_scale=1.0),
            op("mlp", ratio=4.0),
        ),
        op("classifier", norm_position="pre_pool", hidden=768, hidden_act="gelu"),
    )


@add(
    "flatten_swin_t",
    paper=FLATTEN,
    families=("M07", "M02"),
    macro=("MA2", "MA4"),
    published=paper(
        29, 4.5, "FLatten Transformer paper, ImageNet table (FLatten-Swin-T: 29M, 4.5G)"
    ),
)
def flatten_swin_t() -> ArchSpec:
    # LeapLabTHU/FLatten-Transformer flatten_swin_t: focused linear attention (window 56 = the
    # whole 56x56 / 28x28 map, focusing factor 3, 5x5 dwconv on V) in stages 1-2, shifted-window
    # softmax attention in 3-4
    def mixer(i: int, j: int) -> Op:
        if i < 2:
            return op(
                "focused_linear_attention", window=56, head_dim=32, focusing_factor=3.0, kernel=5
            )
        return op("window_attention", window=7, shift=j % 2 == 1)

    return swin_like(mixer)


@add(
    "litv2_s",
    paper=LITV2,
    families=("M09", "M05", "M12"),
    macro=("MA2", "MA4", "MA6"),
    published=paper(28, 3.7, "ziplab/LITv2 README (LITv2-S, 224: 28M, 3.7G)"),
    notes="deformable token merging (DTM) is patch merging",
)
def litv2_s() -> ArchSpec:
    # ziplab/LITv2 (litv2_s): ConvFFN-only blocks early, HiLo attention (alpha 0.9, local window
    # 2 in stage 3, 1 in stage 4) + ConvFFN late, head_dim 32, MLP 4x
    windows = (0, 0, 2, 1)

    def make(i: int, j: int) -> Block:
        if i < 2:  # ConvFFN-only blocks: no token mixer
            return block(op("none"), op("conv_ffn", ratio=4.0, kernel=3))
        return block(
            op("hilo_attention", head_dim=32, alpha=0.9, window=windows[i]),
            op("conv_ffn", ratio=4.0, kernel=3),
        )

    return pyramid(
        op("patch_embed", patch_size=4, norm="layernorm"),
        (2, 2, 6, 2),
        (96, 192, 384, 768),
        op("patch_merging"),
        make,
        op("classifier", norm_position="pre_pool"),
    )
