"""tfdphpe.export"""
