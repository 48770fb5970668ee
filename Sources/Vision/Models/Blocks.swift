import Kernels
import NN

/// torchvision.ops.misc's building blocks, under their module names, for the families that use them.
extension NetworkBuilder {
    /// Conv2dNormActivation at `p`: `p.0` a convolution without bias and with padding (k − 1) / 2, `p.1`
    /// its BatchNorm, then `p.2` the activation unless it is `.none` (ReLU, ReLU6, or the Hardswish and
    /// SiLU functions).
    public mutating func convNormActivation(
        _ p: String, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1, groups: Int = 1, eps: Float = 1e-5,
        momentum: Float = 0.1, activation: Activation
    ) -> Int {
        let c = conv(p + ".0", x, out, kernel: kernel, stride: stride, padding: (kernel - 1) / 2, groups: groups)
        return activate(p + ".2", batchNorm(p + ".1", c, eps: eps, momentum: momentum), activation)
    }

    /// SqueezeExcitation at `p`: `p.avgpool`, `p.fc1` (1×1 with bias, to `squeeze` channels),
    /// `p.activation`, `p.fc2` (back to the input's width), `p.scale_activation`, and `p` the product.
    public mutating func squeezeExcitation(
        _ p: String, _ x: Int, squeeze: Int, activation: Activation, scale: PointwiseFunction
    ) -> Int {
        var s = adaptiveAvgPool(p + ".avgpool", x, 1, 1)
        s = activate(p + ".activation", conv(p + ".fc1", s, squeeze, kernel: 1, bias: true), activation)
        s = self.activation(p + ".scale_activation", scale, conv(p + ".fc2", s, channelsOf(x), kernel: 1, bias: true))
        return function(p, ChannelScaling(), [x, s])
    }

    /// `x` through the layer for `a` named `name` (ReLU, ReLU6, Hardswish, SiLU, GELU); `x` itself for `.none`.
    mutating func activate(_ name: String, _ x: Int, _ a: Activation) -> Int {
        switch a {
        case .none: x
        case .relu: relu(name, x)
        case .relu6: relu6(name, x)
        case .hardswish: activation(name, .hardswish, x)
        case .silu: activation(name, .silu, x)
        case .gelu: activation(name, .gelu, x)
        }
    }
}
